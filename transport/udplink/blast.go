package udplink

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/flightline/flightline/transport/link"
)

// blastIdle is how long Blast waits for stragglers after the sender finished
// while nothing arrived and nothing is queued in rx's receive buffer;
// whatever is missing then is loss.
const blastIdle = 50 * time.Millisecond

// blastRecvStart runs when Blast's receiver goroutine starts. Tests set it
// to stand in for a receiver the scheduler starves; nil in production.
var blastRecvStart func()

// BlastResult is the outcome of one Blast: the raw datapath ceiling that the
// transport's goodput is compared with.
type BlastResult struct {
	Sent     int64         // datagrams WriteBatch handed to the kernel
	Packets  int64         // datagrams received
	Bytes    int64         // payload bytes received
	Lost     int64         // Sent - Packets
	Dropped  int64         // of Lost, dropped by the kernel at rx's socket (receive buffer overrun)
	Duration time.Duration // first send to last datagram received
}

// Loss is the fraction of sent datagrams that never arrived.
func (r BlastResult) Loss() float64 {
	if r.Sent == 0 {
		return 0
	}
	return float64(r.Lost) / float64(r.Sent)
}

// PacketsPerSec is the received datagram rate.
func (r BlastResult) PacketsPerSec() float64 {
	if r.Duration <= 0 {
		return 0
	}
	return float64(r.Packets) / r.Duration.Seconds()
}

// BytesPerSec is the received payload rate (goodput of the raw datapath).
func (r BlastResult) BytesPerSec() float64 {
	if r.Duration <= 0 {
		return 0
	}
	return float64(r.Bytes) / r.Duration.Seconds()
}

// Blast sends bytes of payload-sized datagrams from tx to rx as fast as
// WriteBatch goes (no flow control: overrun is reported as loss) while a
// goroutine drains rx with ReadBatch. It returns when every datagram sent
// arrived or was dropped by the kernel at rx's socket, or blastIdle after the
// sender finished with no further arrivals and rx's receive queue empty, or
// when ctx is done (then with ctx.Err() and the partial result).
//
// The receive queue counts, not only arrivals: a receiver goroutine the
// scheduler starves leaves datagrams queued in the socket, and declaring
// them lost (as Blast once did after blastIdle of no reads) reported up to
// 100 % loss on a loaded machine and left them queued for rx's next reader.
//
// Blast owns rx for its duration: nothing else may read from it. It uses
// rx's read deadline to stop the receiver and clears it before returning.
func Blast(ctx context.Context, tx, rx *Link, bytes int64, payload int) (BlastResult, error) {
	if payload <= 0 || payload > tx.maxPayload() {
		return BlastResult{}, fmt.Errorf("udplink: blast payload %d out of range", payload)
	}
	if bytes <= 0 {
		return BlastResult{}, fmt.Errorf("udplink: blast of %d bytes", bytes)
	}
	total := (bytes + int64(payload) - 1) / int64(payload)
	dst := loopbackFor(rx.LocalAddr())

	var (
		got, gotBytes atomic.Int64
		lastRecv      atomic.Int64 // UnixNano of the last arrival
		rxErr         error
		wg            sync.WaitGroup
	)
	_, drops0, memErr := rx.memInfo()
	start := time.Now()
	lastRecv.Store(start.UnixNano())
	wg.Add(1)
	go func() {
		defer wg.Done()
		if blastRecvStart != nil {
			blastRecvStart()
		}
		msgs := make([]link.Message, rx.BatchSize())
		for i := range msgs {
			msgs[i].Buf = make([]byte, max(payload, link.MaxPacketSize))
		}
		for got.Load() < total {
			n, err := rx.ReadBatch(msgs)
			if err != nil {
				if !errors.Is(err, os.ErrDeadlineExceeded) {
					rxErr = err
				}
				return
			}
			var b int64
			for _, m := range msgs[:n] {
				b += int64(len(m.Buf))
			}
			gotBytes.Add(b)
			got.Add(int64(n))
			lastRecv.Store(time.Now().UnixNano())
		}
	}()

	buf := make([]byte, payload)
	for i := range buf {
		buf[i] = byte(i)
	}
	batch := make([]link.Message, tx.BatchSize())
	for i := range batch {
		batch[i] = link.Message{Buf: buf, Addr: dst}
	}
	var sent int64
	var txErr error
	for sent < total && ctx.Err() == nil {
		k := int(min(int64(len(batch)), total-sent))
		n, err := tx.WriteBatch(batch[:k])
		sent += int64(n)
		if err != nil {
			txErr = err
			break
		}
	}

	// Wait for the receiver to finish, go idle, or be cancelled.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	lastProgress := time.Now().UnixNano() // send end, or rx's queue last seen non-empty
	var dropped int64
	// finished reports whether every datagram is accounted for, or the
	// stragglers are given up on.
	finished := func() bool {
		now := time.Now().UnixNano()
		if memErr == nil {
			if queued, drops, err := rx.memInfo(); err == nil {
				if d := int64(drops - drops0); d != dropped {
					dropped, lastProgress = d, now
				}
				if got.Load()+dropped >= sent {
					return true // every datagram arrived or was dropped
				}
				if queued > 0 {
					lastProgress = now // datagrams wait: the receiver is late, not idle
					return false
				}
			}
		}
		return got.Load() >= sent || now-max(lastProgress, lastRecv.Load()) >= int64(blastIdle)
	}
wait:
	for {
		select {
		case <-done:
			break wait
		case <-ctx.Done():
		case <-tick.C:
			if !finished() {
				continue
			}
		}
		_ = rx.conn.SetReadDeadline(time.Unix(1, 0)) // unblock the receiver
		<-done
		break
	}
	_ = rx.conn.SetReadDeadline(time.Time{})
	if _, drops, err := rx.memInfo(); err == nil && memErr == nil {
		dropped = int64(drops - drops0)
	}

	res := BlastResult{
		Sent:     sent,
		Packets:  got.Load(),
		Bytes:    gotBytes.Load(),
		Duration: time.Duration(lastRecv.Load() - start.UnixNano()),
	}
	res.Lost = max(res.Sent-res.Packets, 0)
	res.Dropped = min(dropped, res.Lost)
	switch {
	case txErr != nil:
		return res, fmt.Errorf("udplink: blast send: %w", txErr)
	case rxErr != nil:
		return res, fmt.Errorf("udplink: blast receive: %w", rxErr)
	case ctx.Err() != nil:
		return res, ctx.Err()
	}
	return res, nil
}

// loopbackFor turns a wildcard listen address into the loopback address of
// the same family, so a sender on this host can reach it.
func loopbackFor(ap netip.AddrPort) netip.AddrPort {
	a := ap.Addr()
	if a.IsUnspecified() || !a.IsValid() {
		if a.Is4() {
			return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), ap.Port())
		}
		return netip.AddrPortFrom(netip.IPv6Loopback(), ap.Port())
	}
	return ap
}

// memInfo reports the bytes queued in l's receive buffer and how many
// datagrams the kernel has dropped at the socket since it was opened
// (SO_MEMINFO: SK_MEMINFO_RMEM_ALLOC and SK_MEMINFO_DROPS).
func (l *Link) memInfo() (queued, drops uint32, err error) {
	var mem [unix.SK_MEMINFO_VARS]uint32
	var serr error
	if err := l.rc.Control(func(fd uintptr) {
		n := uint32(unsafe.Sizeof(mem))
		_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_MEMINFO,
			uintptr(unsafe.Pointer(&mem[0])), uintptr(unsafe.Pointer(&n)), 0)
		if errno != 0 {
			serr = errno
		}
	}); err != nil {
		return 0, 0, fmt.Errorf("udplink: SO_MEMINFO: %w", err)
	}
	if serr != nil {
		return 0, 0, fmt.Errorf("udplink: SO_MEMINFO: %w", serr)
	}
	return mem[unix.SK_MEMINFO_RMEM_ALLOC], mem[unix.SK_MEMINFO_DROPS], nil
}
