package testnet

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ethtoolValue is struct ethtool_value from <linux/ethtool.h>.
type ethtoolValue struct {
	cmd  uint32
	data uint32
}

// ifreqData is struct ifreq with the ifr_data member of the union
// (40 bytes on 64-bit Linux).
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [24 - unsafe.Sizeof(uintptr(0))]byte
}

// setTxChecksum switches all tx checksum offloads of ifname (in the calling
// thread's netns) with the legacy ETHTOOL_STXCSUM ioctl, which the kernel maps
// to NETIF_F_CSUM_MASK, i.e. tx-checksum-ip-generic on veth. This is what
// `ethtool -K dev tx off` does; doing it here means the harness needs no
// ethtool binary. It reads the value back to confirm.
func setTxChecksum(ifname string, on bool) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("ethtool socket: %w", err)
	}
	defer unix.Close(fd)
	want := uint32(0)
	if on {
		want = 1
	}
	if err := ethtoolIoctl(fd, ifname, &ethtoolValue{cmd: unix.ETHTOOL_STXCSUM, data: want}); err != nil {
		return fmt.Errorf("set tx checksum offload of %s: %w", ifname, err)
	}
	got := ethtoolValue{cmd: unix.ETHTOOL_GTXCSUM}
	if err := ethtoolIoctl(fd, ifname, &got); err != nil {
		return fmt.Errorf("get tx checksum offload of %s: %w", ifname, err)
	}
	if got.data != want {
		return fmt.Errorf("tx checksum offload of %s is %d after setting %d", ifname, got.data, want)
	}
	return nil
}

func ethtoolIoctl(fd int, ifname string, v *ethtoolValue) error {
	var ifr ifreqData
	copy(ifr.name[:unix.IFNAMSIZ-1], ifname)
	ifr.data = unsafe.Pointer(v)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	if errno != 0 {
		return errno
	}
	return nil
}
