package bpf

import (
	"encoding/binary"
	"errors"
	"os"
	"testing"
)

// requirePrivileged skips without root, but fails when CI=true: CI runs as
// root, so a skip there would hide a broken setup.
func requirePrivileged(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("BPF_PROG_TEST_RUN needs root (CAP_BPF+CAP_NET_ADMIN), and CI=true")
	}
	t.Skip("BPF_PROG_TEST_RUN needs root (CAP_BPF+CAP_NET_ADMIN)")
}

const testPort = 4433

type frameOpt struct {
	ihl      int    // IPv4 header words, default 5
	fragment uint16 // IPv4 flags+offset field (host order)
	proto    byte   // default UDP
	dport    uint16 // default testPort
	version  byte   // IP version nibble override
}

func ipv4Frame(o frameOpt) []byte {
	if o.ihl == 0 {
		o.ihl = 5
	}
	if o.proto == 0 {
		o.proto = 17
	}
	if o.dport == 0 {
		o.dport = testPort
	}
	if o.version == 0 {
		o.version = 4
	}
	hl := o.ihl * 4
	f := make([]byte, 14+hl+8+16)
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:]
	ip[0] = o.version<<4 | byte(o.ihl)
	binary.BigEndian.PutUint16(ip[2:], uint16(hl+8+16))
	binary.BigEndian.PutUint16(ip[6:], o.fragment)
	ip[8] = 64
	ip[9] = o.proto
	copy(ip[12:], []byte{10, 0, 0, 1, 10, 0, 0, 2})
	for i := 20; i < hl; i++ {
		ip[i] = 1 // NOP options
	}
	udp := ip[hl:]
	binary.BigEndian.PutUint16(udp[0:], 5555)
	binary.BigEndian.PutUint16(udp[2:], o.dport)
	binary.BigEndian.PutUint16(udp[4:], 8+16)
	return f
}

func ipv6Frame(o frameOpt) []byte {
	if o.proto == 0 {
		o.proto = 17
	}
	if o.dport == 0 {
		o.dport = testPort
	}
	if o.version == 0 {
		o.version = 6
	}
	f := make([]byte, 14+40+8+16)
	binary.BigEndian.PutUint16(f[12:], 0x86dd)
	ip := f[14:]
	ip[0] = o.version << 4
	binary.BigEndian.PutUint16(ip[4:], 8+16)
	ip[6] = o.proto
	ip[7] = 64
	ip[23] = 1
	ip[39] = 2
	udp := ip[40:]
	binary.BigEndian.PutUint16(udp[0:], 5555)
	binary.BigEndian.PutUint16(udp[2:], o.dport)
	binary.BigEndian.PutUint16(udp[4:], 8+16)
	return f
}

func arpFrame() []byte {
	f := make([]byte, 42)
	binary.BigEndian.PutUint16(f[12:], 0x0806)
	return f
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ports []uint16
		q     int
	}{
		{"no ports", nil, 1},
		{"port zero", []uint16{0}, 1},
		{"zero queues", []uint16{1}, 0},
		{"too many queues", []uint16{1}, MaxQueues + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "port zero" {
				requirePrivileged(t)
			}
			p, err := Load(tc.ports, tc.q)
			if err == nil {
				p.Close()
				t.Fatal("Load succeeded")
			}
		})
	}
}

func TestProgramTestRun(t *testing.T) {
	requirePrivileged(t)
	p, err := Load([]uint16{testPort, 9999}, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	match := ipv4Frame(frameOpt{})
	cases := []struct {
		name    string
		frame   []byte
		matched bool // counts as Matched (redirect attempted) rather than Passed
	}{
		{"ipv4 match", match, true},
		{"ipv4 second port", ipv4Frame(frameOpt{dport: 9999}), true},
		{"ipv4 other port", ipv4Frame(frameOpt{dport: 53}), false},
		{"ipv4 options ihl 6", ipv4Frame(frameOpt{ihl: 6}), true},
		{"ipv4 options ihl 15", ipv4Frame(frameOpt{ihl: 15}), true},
		{"ipv4 ihl 4 invalid", ipv4Frame(frameOpt{ihl: 4}), false},
		{"ipv4 more fragments", ipv4Frame(frameOpt{fragment: 0x2000}), false},
		{"ipv4 fragment offset", ipv4Frame(frameOpt{fragment: 0x0010}), false},
		{"ipv4 DF is fine", ipv4Frame(frameOpt{fragment: 0x4000}), true},
		{"ipv4 tcp", ipv4Frame(frameOpt{proto: 6}), false},
		{"ipv4 bad version", ipv4Frame(frameOpt{version: 5}), false},
		{"eth only", match[:14], false},
		{"truncated ip header", match[:14+19], false},
		{"truncated before udp", match[:14+20], false},
		{"truncated udp header", match[:14+20+7], false},
		{"udp header only", match[:14+20+8], true},
		{"ihl 15 truncated options", ipv4Frame(frameOpt{ihl: 15})[:14+40], false},
		{"arp", arpFrame(), false},
		{"ipv6 match", ipv6Frame(frameOpt{}), true},
		{"ipv6 other port", ipv6Frame(frameOpt{dport: 53}), false},
		{"ipv6 extension header", ipv6Frame(frameOpt{proto: 0 /* hop-by-hop */ + 60}), false},
		{"ipv6 bad version", ipv6Frame(frameOpt{version: 4}), false},
		{"ipv6 truncated", ipv6Frame(frameOpt{})[:14+40+4], false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := counters(t, p)
			act, err := p.Run(tc.frame)
			if err != nil {
				t.Fatal(err)
			}
			// No socket is registered, so even a match falls back to PASS.
			if act != ActionPass {
				t.Fatalf("action %d, want XDP_PASS", act)
			}
			after := counters(t, p)
			dm, dp := after.Matched-before.Matched, after.Passed-before.Passed
			want := [2]uint64{0, 1}
			if tc.matched {
				want = [2]uint64{1, 0}
			}
			if [2]uint64{dm, dp} != want {
				t.Fatalf("matched/passed delta %d/%d, want %v", dm, dp, want)
			}
		})
	}

	t.Run("shorter than ethernet", func(t *testing.T) {
		if _, err := p.Run(match[:10]); err == nil {
			t.Fatal("kernel accepted a 10-byte test frame")
		}
	})
	t.Run("register checks range", func(t *testing.T) {
		if err := p.Register(4, 0); err == nil {
			t.Fatal("queue 4 of 4 accepted")
		}
		if err := p.Unregister(0); err != nil {
			t.Fatalf("unregister empty queue: %v", err)
		}
	})
}

func counters(t *testing.T, p *Program) QueueCounters {
	t.Helper()
	cs, err := p.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 4 {
		t.Fatalf("%d counters", len(cs))
	}
	return cs[0]
}

func TestClose(t *testing.T) {
	requirePrivileged(t)
	p, err := Load([]uint16{testPort}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := p.Run(ipv4Frame(frameOpt{})); !errors.Is(err, ErrClosed) {
		t.Fatalf("run after close: %v", err)
	}
	if err := p.Attach(1, ModeGeneric); !errors.Is(err, ErrClosed) {
		t.Fatalf("attach after close: %v", err)
	}
}
