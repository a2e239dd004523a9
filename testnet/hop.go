package testnet

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// vnetHdrLen is the size of struct virtio_net_hdr, which PACKET_VNET_HDR
// prepends on receive and expects on send. Forwarding it verbatim keeps
// CHECKSUM_PARTIAL and GSO metadata intact, so the hop is transparent even
// with TxChecksumOffload or UDP GSO senders.
const vnetHdrLen = 10

// readBuf fits the largest frame a veth can carry (64 KiB GSO) plus header.
const readBuf = 65536 + vnetHdrLen + 64

// hopEpoch is the hop's clock origin; times are ns since it.
var hopEpoch = time.Now()

func hopNow() int64 { return int64(time.Since(hopEpoch)) }

// middle is namespace M and everything in it. Index i of ifname, ifindex and
// sock is the interface facing A (0) or B (1); direction d (0 = A to B)
// enters M on interface d and leaves on 1-d.
type middle struct {
	ns      string
	ifname  [2]string
	ifindex [2]int
	bpf     [2]*dirBPF
	sock    [2]*os.File // AF_PACKET, bound to ifname[i]
	dirs    [2]*hopDir

	mu      sync.Mutex // serialises setImpairment and guards the fields below
	imp     [2]Impairment
	applied [2]bool
	haveTBF bool
	tbfErr  error // why tbf is not used, if it was wanted

	done chan struct{}
	wg   sync.WaitGroup
}

// hopDir is the userspace path of one direction.
type hopDir struct {
	mu   sync.Mutex // guards s
	s    *sched
	wake chan struct{} // cap 1: "the schedule changed"
}

// start configures M, loads the BPF programs, opens the sockets, starts the
// hop goroutines and applies cfg's impairments.
func (m *middle) start(cfg Config) error {
	m.done = make(chan struct{})
	_, err := exec.LookPath("tc")
	m.haveTBF = err == nil
	if !m.haveTBF {
		m.tbfErr = fmt.Errorf("tc not found: %w", err)
	}
	err = runInNetns(m.ns, func() error {
		for i, ifn := range m.ifname {
			// M must stay silent: no IPv6 link-local, RS, DAD or MLD of
			// its own on the wire between A and B.
			if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+ifn+"/disable_ipv6", []byte("1"), 0); err != nil {
				return fmt.Errorf("disable ipv6 on %s: %w", ifn, err)
			}
			ifc, err := net.InterfaceByName(ifn)
			if err != nil {
				return fmt.Errorf("look up %s: %w", ifn, err)
			}
			m.ifindex[i] = ifc.Index
			if !cfg.TxChecksumOffload {
				if err := setTxChecksum(ifn, false); err != nil {
					return err
				}
			}
		}
		for d := range 2 {
			b, err := attachDir(m.ifindex[d], m.ifindex[1-d])
			if err != nil {
				return err
			}
			m.bpf[d] = b
		}
		for i := range 2 {
			f, err := openPacketSocket(m.ifname[i], m.ifindex[i])
			if err != nil {
				return err
			}
			m.sock[i] = f
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := ipBatch(m.ns, []string{"link set lo up", "link set " + m.ifname[0] + " up", "link set " + m.ifname[1] + " up"}); err != nil {
		return err
	}
	for d := range 2 {
		m.dirs[d] = &hopDir{s: newSched(Impairment{}, false, d), wake: make(chan struct{}, 1)}
		m.wg.Add(2)
		go m.reader(d)
		go m.writer(d)
	}
	return m.setImpairment([2]Impairment{cfg.AtoB, cfg.BtoA})
}

// openPacketSocket opens a non-blocking AF_PACKET socket on ifindex with a
// drop-all filter (setImpairment opens it when the direction needs it). It
// ignores frames M itself sends, which would otherwise loop back to it.
func openPacketSocket(ifname string, ifindex int) (*os.File, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("packet socket: %w", err)
	}
	setup := func() error {
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
			return fmt.Errorf("PACKET_VNET_HDR: %w", err)
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
			return fmt.Errorf("PACKET_IGNORE_OUTGOING: %w", err)
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20); err != nil {
			return fmt.Errorf("SO_RCVBUFFORCE: %w", err)
		}
		if err := setSocketFilter(fd, false); err != nil {
			return err
		}
		sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex}
		if err := unix.Bind(fd, sa); err != nil {
			return fmt.Errorf("bind packet socket to %s: %w", ifname, err)
		}
		return nil
	}
	if err := setup(); err != nil {
		_ = unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), "packet:"+ifname), nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// setSocketFilter attaches a classic BPF filter that accepts every frame or
// none. A dropping filter runs before the kernel clones the frame, so an idle
// hop costs almost nothing while M forwards in the kernel.
func setSocketFilter(fd int, accept bool) error {
	k := uint32(0)
	if accept {
		k = 0xffffffff
	}
	prog := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: k}}
	fprog := unix.SockFprog{Len: 1, Filter: &prog[0]}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fprog); err != nil {
		return fmt.Errorf("attach socket filter: %w", err)
	}
	return nil
}

func (m *middle) setFilter(i int, accept bool) error {
	rc, err := m.sock[i].SyscallConn()
	if err != nil {
		return fmt.Errorf("packet socket: %w", err)
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = setSocketFilter(int(fd), accept) }); err != nil {
		return fmt.Errorf("packet socket: %w", err)
	}
	return ferr
}

// reader admits frames of direction d from the socket on its ingress side.
func (m *middle) reader(d int) {
	defer m.wg.Done()
	hd := m.dirs[d]
	buf := make([]byte, readBuf)
	for {
		n, err := m.sock[d].Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			// Transient (e.g. ENETDOWN while M is torn down): do not spin.
			select {
			case <-m.done:
				return
			case <-time.After(time.Millisecond):
			}
			continue
		}
		if n < vnetHdrLen {
			continue
		}
		data := append([]byte(nil), buf[:n]...)
		hd.mu.Lock()
		hd.s.push(hopNow(), data)
		hd.mu.Unlock()
		select {
		case hd.wake <- struct{}{}:
		default:
		}
	}
}

// writer sends frames of direction d out of the egress side when they are due.
func (m *middle) writer(d int) {
	defer m.wg.Done()
	hd := m.dirs[d]
	out := m.sock[1-d]
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var batch [][]byte
	for {
		hd.mu.Lock()
		batch = hd.s.pop(hopNow(), batch[:0])
		next, ok := hd.s.next()
		hd.mu.Unlock()
		var failed uint64
		for i, f := range batch {
			if _, err := out.Write(f); err != nil {
				if errors.Is(err, os.ErrClosed) {
					return
				}
				failed++
			}
			batch[i] = nil
		}
		if failed > 0 {
			hd.mu.Lock()
			hd.s.st.HopDropped += failed
			hd.mu.Unlock()
		}
		if len(batch) > 0 {
			continue // more may have become due while sending
		}
		wait := time.Hour
		if ok {
			wait = max(time.Duration(next-hopNow()), 0)
		}
		timer.Reset(wait)
		select {
		case <-m.done:
			return
		case <-hd.wake:
		case <-timer.C:
		}
	}
}

// setImpairment applies both directions. For each: loss threshold in XDP,
// tbf on the egress interface, then either kernel forwarding (tcx redirect,
// socket filter closed) or the userspace hop (filter open, tcx drops). The
// switch opens the new path before closing the old one, so frames in flight
// may be forwarded twice but are not lost.
func (m *middle) setImpairment(imps [2]Impairment) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for d, imp := range imps {
		if err := m.applyLocked(d, imp); err != nil {
			return fmt.Errorf("direction %d: %w", d, err)
		}
	}
	return nil
}

func (m *middle) applyLocked(d int, imp Impairment) error {
	out := 1 - d
	if err := m.bpf[d].setLoss(imp.Loss); err != nil {
		return err
	}
	if m.haveTBF && (!m.applied[d] || imp.Rate != m.imp[d].Rate) {
		switch {
		case imp.Rate > 0:
			if err := setTBF(m.ns, m.ifname[out], imp.Rate); err != nil {
				// The kernel may lack sch_tbf: fall back to the
				// userspace rate limiter for good.
				m.haveTBF, m.tbfErr = false, err
			}
		case m.applied[d] && m.imp[d].Rate > 0:
			if err := run("tc", "-n", m.ns, "qdisc", "del", "dev", m.ifname[out], "root"); err != nil {
				return fmt.Errorf("remove tbf: %w", err)
			}
		}
	}
	user := imp.needsUserspace(m.haveTBF)
	hd := m.dirs[d]
	hd.mu.Lock()
	hd.s.set(imp, imp.Rate > 0 && !m.haveTBF, d)
	hd.mu.Unlock()
	select {
	case hd.wake <- struct{}{}:
	default:
	}
	if user {
		if err := m.setFilter(d, true); err != nil {
			return err
		}
		if err := m.bpf[d].setForward(0); err != nil {
			return err
		}
	} else {
		if err := m.bpf[d].setForward(m.ifindex[out]); err != nil {
			return err
		}
		if err := m.setFilter(d, false); err != nil {
			return err
		}
	}
	m.imp[d], m.applied[d] = imp, true
	return nil
}

// setTBF shapes egress of ifname to rate bit/s. The bucket holds 10 ms of
// traffic but at least four full frames, and the queue 50 ms, so a blast
// settles at the configured rate within a few ms.
func setTBF(ns, ifname string, rate int64) error {
	burst := max(rate/8/100, 4*(65536/16)) // 4*4096 B floor also covers MTU 1500 + GSO segments
	return run("tc", "-n", ns, "qdisc", "replace", "dev", ifname, "root", "tbf",
		"rate", fmt.Sprintf("%dbit", rate), "burst", fmt.Sprint(burst), "latency", "50ms")
}

// tbfStats reads drops and overlimits of the root tbf of ifname.
func tbfStats(ns, ifname string) (drops, overlimits uint64, err error) {
	out, err := exec.Command("tc", "-n", ns, "-s", "-j", "qdisc", "show", "dev", ifname).Output()
	if err != nil {
		return 0, 0, fmt.Errorf("tc qdisc show: %w", err)
	}
	var qs []struct {
		Kind       string `json:"kind"`
		Root       bool   `json:"root"`
		Drops      uint64 `json:"drops"`
		Overlimits uint64 `json:"overlimits"`
	}
	if err := json.Unmarshal(out, &qs); err != nil {
		return 0, 0, fmt.Errorf("parse tc output: %w", err)
	}
	for _, q := range qs {
		if q.Kind == "tbf" && q.Root {
			return q.Drops, q.Overlimits, nil
		}
	}
	return 0, 0, nil
}

func (m *middle) stats(d int) DirStats {
	hd := m.dirs[d]
	hd.mu.Lock()
	st := hd.s.st
	hd.mu.Unlock()
	st.Seen, st.Lost = m.bpf[d].counters()
	m.mu.Lock()
	useTBF := m.haveTBF && m.imp[d].Rate > 0
	m.mu.Unlock()
	if useTBF {
		if drops, over, err := tbfStats(m.ns, m.ifname[1-d]); err == nil {
			st.RateDropped += drops
			st.RateQueued += over
		}
	}
	return st
}

// stop ends the hop goroutines and releases sockets and BPF objects. Safe on
// a partly started middle.
func (m *middle) stop() {
	if m.done != nil {
		close(m.done)
	}
	for _, f := range m.sock {
		if f != nil {
			_ = f.Close()
		}
	}
	m.wg.Wait()
	for _, b := range m.bpf {
		if b != nil {
			b.close()
		}
	}
}
