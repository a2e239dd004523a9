package xdp

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ethtoolChannels mirrors struct ethtool_channels (linux/ethtool.h).
type ethtoolChannels struct {
	Cmd           uint32
	MaxRx         uint32
	MaxTx         uint32
	MaxOther      uint32
	MaxCombined   uint32
	RxCount       uint32
	TxCount       uint32
	OtherCount    uint32
	CombinedCount uint32
}

// ifreqData is struct ifreq with the ifr_data member.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [16]byte
}

// rxQueues returns the device's active receive queues (ETHTOOL_GCHANNELS:
// rx plus combined), or 1 if the driver does not report channels. It asks
// through a socket, not sysfs, because /sys/class/net shows the namespace
// sysfs was mounted in, not the calling thread's.
func rxQueues(ifname string) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("count queues of %s: %w", ifname, err)
	}
	defer unix.Close(fd)
	ch := ethtoolChannels{Cmd: unix.ETHTOOL_GCHANNELS}
	var ifr ifreqData
	copy(ifr.name[:len(ifr.name)-1], ifname)
	ifr.data = unsafe.Pointer(&ch)
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	if e != 0 {
		if errors.Is(e, unix.EOPNOTSUPP) {
			return 1, nil
		}
		return 0, fmt.Errorf("ETHTOOL_GCHANNELS on %s: %w", ifname, e)
	}
	n := int(ch.RxCount + ch.CombinedCount)
	if n < 1 {
		n = 1
	}
	return n, nil
}
