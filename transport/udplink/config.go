package udplink

import "github.com/flightline/flightline/transport/link"

// Defaults and limits for Config.
const (
	// DefaultSocketBuffer is the SO_RCVBUF/SO_SNDBUF size requested when
	// Config.SocketBuffer is zero. A blast of 64 KiB GSO super-datagrams
	// overruns the usual 208 KiB default within microseconds.
	DefaultSocketBuffer = 4 << 20
	// MaxBatchSize bounds Config.BatchSize. Every batch slot preallocates a
	// mmsghdr, an iovec, a sockaddr and a cmsg buffer, and with GRO a 64 KiB
	// receive buffer, so the bound also bounds per-Link memory (8 MiB).
	MaxBatchSize = 128
)

// Kernel limits for UDP GSO (include/linux/udp.h, net/ipv4/udp.c).
const (
	// maxGSOSegments is the segment count we coalesce up to. Recent kernels
	// raised UDP_MAX_SEGMENTS to 128, older ones reject more than 64.
	maxGSOSegments = 64
	// maxGSOBytes4/6 bound a super-datagram's payload: the IP total length
	// (IPv4, includes its 20-byte header) or payload length (IPv6) is 16 bits
	// and the 8-byte UDP header is in it.
	maxGSOBytes4 = 1<<16 - 1 - 20 - 8
	maxGSOBytes6 = 1<<16 - 1 - 8
	// groBufSize is the size of one internal GRO receive buffer: the largest
	// super-datagram the kernel can hand us.
	groBufSize = 1 << 16
)

// Config tunes a Link. The zero value is ready to use.
type Config struct {
	// DisableGSO turns off UDP generic segmentation offload on send. By
	// default (false) Listen probes the kernel and uses it when offered.
	DisableGSO bool
	// DisableGRO turns off UDP generic receive offload. By default (false)
	// Listen enables UDP_GRO when the kernel accepts it.
	DisableGRO bool
	// BatchSize is the most datagrams moved per recvmmsg/sendmmsg.
	// Default link.IdealBatchSize (64); values above MaxBatchSize are clamped.
	BatchSize int
	// SocketBuffer is the SO_RCVBUF and SO_SNDBUF request in bytes. Default
	// DefaultSocketBuffer (4 MiB). Listen tries SO_*BUFFORCE first (works for
	// root, ignores net.core.*mem_max) and falls back to SO_*BUF; errors are
	// ignored because a smaller buffer only costs throughput.
	SocketBuffer int
	// Logf, when set, receives one line each time an offload is disabled,
	// at probe time or at runtime. Default nil: no logging.
	Logf func(format string, args ...any)
}

func (c Config) withDefaults() Config {
	if c.BatchSize <= 0 {
		c.BatchSize = link.IdealBatchSize
	}
	if c.BatchSize > MaxBatchSize {
		c.BatchSize = MaxBatchSize
	}
	if c.SocketBuffer <= 0 {
		c.SocketBuffer = DefaultSocketBuffer
	}
	return c
}

// Stats are cumulative counters of a Link. All fields count since Listen.
type Stats struct {
	DatagramsIn  uint64 // datagrams returned by ReadBatch (GRO segments counted singly)
	BytesIn      uint64 // payload bytes returned by ReadBatch
	DatagramsOut uint64 // datagrams handed to the kernel (GSO segments counted singly)
	BytesOut     uint64 // payload bytes handed to the kernel
	SyscallsIn   uint64 // recvmmsg calls, including those that returned EAGAIN
	SyscallsOut  uint64 // sendmmsg calls, including those that returned EAGAIN
	GSOSends     uint64 // super-datagrams sent with UDP_SEGMENT (2+ segments)
	GROSegments  uint64 // datagrams that arrived inside a GRO super-datagram
	Truncated    uint64 // received datagrams dropped: larger than the caller's buffer
	RecvErrors   uint64 // recvmmsg failures other than EAGAIN/EINTR
	SendErrors   uint64 // sendmmsg failures other than EAGAIN/EINTR (incl. GSO fallbacks)
}
