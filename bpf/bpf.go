// Package bpf builds, loads and attaches flightline's XDP program: the
// in-kernel half of the AF_XDP datapath.
//
// The program is written with cilium/ebpf/asm, so no C toolchain is needed
// to build or test it. For every frame it does:
//
//	eth → IPv4 (version 4, any IHL >= 5, not a fragment) → UDP, or
//	eth → IPv6 (version 6, next header UDP, no extension headers) → UDP,
//	and the UDP destination port is in the ports map:
//	    counters[rx_queue_index].Matched++
//	    return bpf_redirect_map(&xsks, rx_queue_index, XDP_PASS)
//	anything else (ARP, ICMP, other ports, VLAN tags, truncated frames):
//	    counters[rx_queue_index].Passed++
//	    return XDP_PASS
//
// The XDP_PASS in bpf_redirect_map's flags makes a queue with no registered
// socket fall back to the kernel stack instead of dropping, so a socket on
// the wrong queue or a missing socket degrades to the kernel's UDP socket
// rather than a black hole. Whether the redirect itself succeeded is not
// visible to the program; the Matched counter of a queue that has no socket
// is what reveals that case (see xdp.Diagnose).
//
// Ports live in a BPF hash map keyed by the port's two bytes in network
// order (exactly as they sit in the packet), so the same program works on
// either host byte order and needs no immediates patched in.
//
// BPF programs and maps do not belong to a network namespace; only Attach
// (the interface index) does, and it resolves in the namespace of the
// calling OS thread.
package bpf

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// Mode selects how the program is attached.
type Mode int

const (
	// ModeAuto lets the kernel choose: native if the driver supports it,
	// generic (SKB) otherwise. This is the zero value.
	ModeAuto Mode = iota
	// ModeNative requires driver (native) XDP.
	ModeNative
	// ModeGeneric forces generic (SKB) XDP, which works on any device.
	ModeGeneric
)

func (m Mode) String() string {
	switch m {
	case ModeAuto:
		return "auto"
	case ModeNative:
		return "native"
	case ModeGeneric:
		return "generic"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// XDP actions returned by the program (enum xdp_action).
const (
	ActionAborted  = 0
	ActionDrop     = 1
	ActionPass     = 2
	ActionTX       = 3
	ActionRedirect = 4
)

// MaxQueues bounds maxQueues in Load; it is far above any NIC's queue count
// and keeps the maps small.
const MaxQueues = 1024

// QueueCounters are the program's counters for one receive queue.
type QueueCounters struct {
	Queue   int
	Matched uint64 // frames for our ports, handed to bpf_redirect_map
	Passed  uint64 // everything else, passed to the kernel stack
}

// counterValue is the layout of one counters map entry.
type counterValue struct {
	Matched uint64
	Passed  uint64
}

// Errors returned by Program methods.
var (
	ErrClosed   = errors.New("bpf: program closed")
	ErrAttached = errors.New("bpf: program already attached")
)

// Program owns the loaded XDP program, its maps and (after Attach) the
// bpf_link that keeps it attached. Close releases all of them; the link is
// also released by the kernel if the process dies, so a crash never leaves
// the program attached.
type Program struct {
	prog      *ebpf.Program
	xsks      *ebpf.Map // XSKMAP: rx queue index → AF_XDP socket
	counters  *ebpf.Map // Array: rx queue index → counterValue
	ports     *ebpf.Map // Hash: [2]byte port in network order → u8
	link      link.Link // nil until Attach
	maxQueues int
	frags     bool // loaded with BPF_F_XDP_HAS_FRAGS (multi-buffer capable)
}

// Frags reports whether the program was loaded frags-aware, so it attaches
// to interfaces with jumbo MTUs and sees multi-buffer frames.
func (p *Program) Frags() bool { return p.frags }

// Load creates the maps and loads the program. ports must hold 1 to 64
// non-zero ports; maxQueues (1..MaxQueues) sizes the XSKMAP and counters, and
// frames arriving on a queue >= maxQueues are passed to the stack uncounted.
func Load(ports []uint16, maxQueues int) (_ *Program, err error) {
	if len(ports) == 0 || len(ports) > 64 {
		return nil, fmt.Errorf("load xdp program: need 1 to 64 ports, got %d", len(ports))
	}
	if maxQueues < 1 || maxQueues > MaxQueues {
		return nil, fmt.Errorf("load xdp program: maxQueues %d outside 1..%d", maxQueues, MaxQueues)
	}
	p := &Program{maxQueues: maxQueues}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	p.xsks, err = ebpf.NewMap(&ebpf.MapSpec{Name: "fl_xsks", Type: ebpf.XSKMap,
		KeySize: 4, ValueSize: 4, MaxEntries: uint32(maxQueues)})
	if err != nil {
		return nil, fmt.Errorf("create xskmap: %w", err)
	}
	p.counters, err = ebpf.NewMap(&ebpf.MapSpec{Name: "fl_counters", Type: ebpf.Array,
		KeySize: 4, ValueSize: 16, MaxEntries: uint32(maxQueues)})
	if err != nil {
		return nil, fmt.Errorf("create counters map: %w", err)
	}
	p.ports, err = ebpf.NewMap(&ebpf.MapSpec{Name: "fl_ports", Type: ebpf.Hash,
		KeySize: 2, ValueSize: 1, MaxEntries: uint32(len(ports))})
	if err != nil {
		return nil, fmt.Errorf("create ports map: %w", err)
	}
	for _, port := range ports {
		if port == 0 {
			return nil, errors.New("load xdp program: port 0")
		}
		if err := p.ports.Put(portKey(port), uint8(1)); err != nil {
			return nil, fmt.Errorf("add port %d: %w", port, err)
		}
	}
	spec := &ebpf.ProgramSpec{
		Name:         "fl_xsk_redir",
		Type:         ebpf.XDP,
		License:      "GPL", // bpf_redirect_map is GPL-only
		Instructions: instructions(p.xsks.FD(), p.counters.FD(), p.ports.FD()),
		// Frags-aware (xdp.frags): the program only reads the headers in
		// the first buffer, so it is correct for multi-buffer frames, and
		// the flag lets it attach to interfaces whose MTU needs them
		// (jumbo frames). Kernels before 5.18 reject the flag: load
		// without it there.
		Flags: unix.BPF_F_XDP_HAS_FRAGS,
	}
	p.prog, err = ebpf.NewProgramWithOptions(spec, ebpf.ProgramOptions{})
	if err != nil {
		spec.Flags = 0
		if prog, err2 := ebpf.NewProgramWithOptions(spec, ebpf.ProgramOptions{}); err2 == nil {
			p.prog, err = prog, nil
		}
	} else {
		p.frags = true
	}
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("load xdp program: %+v", ve)
		}
		return nil, fmt.Errorf("load xdp program: %w", err)
	}
	return p, nil
}

// portKey is the ports map key: the port as it appears on the wire.
func portKey(port uint16) [2]byte { return [2]byte{byte(port >> 8), byte(port)} }

// Attach attaches the program to ifindex with a bpf_link, so it detaches
// when Close is called or the process exits. The ifindex is resolved in the
// network namespace of the calling OS thread.
func (p *Program) Attach(ifindex int, mode Mode) error {
	if p.prog == nil {
		return ErrClosed
	}
	if p.link != nil {
		return ErrAttached
	}
	var flags link.XDPAttachFlags
	switch mode {
	case ModeAuto:
	case ModeNative:
		flags = link.XDPDriverMode
	case ModeGeneric:
		flags = link.XDPGenericMode
	default:
		return fmt.Errorf("attach xdp: unknown mode %d", int(mode))
	}
	l, err := link.AttachXDP(link.XDPOptions{Program: p.prog, Interface: ifindex, Flags: flags})
	if err != nil {
		return fmt.Errorf("attach xdp to ifindex %d in %s mode: %w", ifindex, mode, err)
	}
	p.link = l
	return nil
}

// Detach removes the program from the interface but keeps it loaded. It is
// a no-op when not attached.
func (p *Program) Detach() error {
	if p.link == nil {
		return nil
	}
	err := p.link.Close()
	p.link = nil
	if err != nil {
		return fmt.Errorf("detach xdp: %w", err)
	}
	return nil
}

// Attached reports whether the program is attached to an interface.
func (p *Program) Attached() bool { return p.link != nil }

// Register sends frames matched on rx queue to the AF_XDP socket xskFD. The
// socket must already be bound to that queue: the kernel accepts an unbound
// socket here and then silently never delivers to it.
func (p *Program) Register(queue int, xskFD int) error {
	if p.xsks == nil {
		return ErrClosed
	}
	if queue < 0 || queue >= p.maxQueues {
		return fmt.Errorf("register queue %d: outside 0..%d", queue, p.maxQueues-1)
	}
	if err := p.xsks.Put(uint32(queue), uint32(xskFD)); err != nil {
		return fmt.Errorf("register queue %d: %w", queue, err)
	}
	return nil
}

// Unregister removes queue's socket; later frames on it fall back to the
// stack. Unregistering an empty queue is not an error.
func (p *Program) Unregister(queue int) error {
	if p.xsks == nil {
		return ErrClosed
	}
	if queue < 0 || queue >= p.maxQueues {
		return fmt.Errorf("unregister queue %d: outside 0..%d", queue, p.maxQueues-1)
	}
	if err := p.xsks.Delete(uint32(queue)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("unregister queue %d: %w", queue, err)
	}
	return nil
}

// Counters returns the per-queue counters, one entry per queue below
// maxQueues. They are cumulative since Load.
func (p *Program) Counters() ([]QueueCounters, error) {
	if p.counters == nil {
		return nil, ErrClosed
	}
	out := make([]QueueCounters, p.maxQueues)
	for q := range out {
		var v counterValue
		if err := p.counters.Lookup(uint32(q), &v); err != nil {
			return nil, fmt.Errorf("read counters of queue %d: %w", q, err)
		}
		out[q] = QueueCounters{Queue: q, Matched: v.Matched, Passed: v.Passed}
	}
	return out, nil
}

// Run runs the program once on frame through BPF_PROG_TEST_RUN, as if it
// arrived on rx queue 0, and returns the XDP action. It is for tests; the
// kernel needs frame to be at least 14 bytes.
func (p *Program) Run(frame []byte) (action uint32, err error) {
	if p.prog == nil {
		return 0, ErrClosed
	}
	action, err = p.prog.Run(&ebpf.RunOptions{Data: frame})
	if err != nil {
		return 0, fmt.Errorf("test run xdp program: %w", err)
	}
	return action, nil
}

// Close detaches the program and releases the program and maps. It is safe
// to call more than once.
func (p *Program) Close() error {
	errs := []error{p.Detach()}
	for _, c := range []interface{ Close() error }{p.prog, p.xsks, p.counters, p.ports} {
		if c != nil && !isNilPtr(c) {
			errs = append(errs, c.Close())
		}
	}
	p.prog, p.xsks, p.counters, p.ports = nil, nil, nil, nil
	return errors.Join(errs...)
}

func isNilPtr(c interface{ Close() error }) bool {
	switch v := c.(type) {
	case *ebpf.Program:
		return v == nil
	case *ebpf.Map:
		return v == nil
	}
	return false
}

// Program-visible offsets (struct xdp_md) and constants.
const (
	mdData         = 0
	mdDataEnd      = 4
	mdRxQueueIndex = 16

	ethLen    = 14
	ipv4Min   = 20
	ipv6Len   = 40
	udpLen    = 8
	protoUDP  = 17
	fragMask  = 0x3fff // MF flag + fragment offset, host order
	counterSz = 8
)

// be16 returns the value a little- or big-endian BPF load of the 2 wire
// bytes of v produces: BPF loads use host order.
func be16(v uint16) int32 {
	b := portKey(v)
	return int32(hostU16(b))
}

func instructions(xsksFD, countersFD, portsFD int) asm.Instructions {
	return asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R7, asm.R6, mdRxQueueIndex, asm.Word), // R7 = queue, kept across calls
		asm.LoadMem(asm.R2, asm.R6, mdData, asm.Word),
		asm.LoadMem(asm.R3, asm.R6, mdDataEnd, asm.Word),
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, ethLen),
		asm.JGT.Reg(asm.R4, asm.R3, "pass"),
		asm.LoadMem(asm.R5, asm.R2, 12, asm.Half), // ethertype
		asm.JEq.Imm(asm.R5, be16(0x0800), "ipv4"),
		asm.JEq.Imm(asm.R5, be16(0x86dd), "ipv6"),
		asm.Ja.Label("pass"),

		// IPv4: version 4, IHL >= 5, protocol UDP, not a fragment.
		asm.Mov.Reg(asm.R4, asm.R2).WithSymbol("ipv4"),
		asm.Add.Imm(asm.R4, ethLen+ipv4Min),
		asm.JGT.Reg(asm.R4, asm.R3, "pass"),
		asm.LoadMem(asm.R5, asm.R2, ethLen, asm.Byte), // version | IHL
		asm.Mov.Reg(asm.R4, asm.R5),
		asm.RSh.Imm(asm.R4, 4),
		asm.JNE.Imm(asm.R4, 4, "pass"),
		asm.And.Imm(asm.R5, 0x0f),
		asm.LSh.Imm(asm.R5, 2), // header length in bytes, 0..60
		asm.JLT.Imm(asm.R5, ipv4Min, "pass"),
		asm.LoadMem(asm.R4, asm.R2, ethLen+9, asm.Byte),
		asm.JNE.Imm(asm.R4, protoUDP, "pass"),
		asm.LoadMem(asm.R4, asm.R2, ethLen+6, asm.Half),
		asm.And.Imm(asm.R4, be16(fragMask)),
		asm.JNE.Imm(asm.R4, 0, "pass"),
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, ethLen),
		asm.Add.Reg(asm.R4, asm.R5), // R4 = UDP header
		asm.Ja.Label("udp"),

		// IPv6: version 6, next header UDP (extension headers are passed).
		asm.Mov.Reg(asm.R4, asm.R2).WithSymbol("ipv6"),
		asm.Add.Imm(asm.R4, ethLen+ipv6Len),
		asm.JGT.Reg(asm.R4, asm.R3, "pass"),
		asm.LoadMem(asm.R5, asm.R2, ethLen, asm.Byte),
		asm.RSh.Imm(asm.R5, 4),
		asm.JNE.Imm(asm.R5, 6, "pass"),
		asm.LoadMem(asm.R5, asm.R2, ethLen+6, asm.Byte),
		asm.JNE.Imm(asm.R5, protoUDP, "pass"),
		// R4 = UDP header already.

		// UDP: whole header present, destination port in the ports map.
		asm.Mov.Reg(asm.R5, asm.R4).WithSymbol("udp"),
		asm.Add.Imm(asm.R5, udpLen),
		asm.JGT.Reg(asm.R5, asm.R3, "pass"),
		asm.LoadMem(asm.R5, asm.R4, 2, asm.Half),
		asm.StoreMem(asm.RFP, -8, asm.R5, asm.Half),
		asm.LoadMapPtr(asm.R1, portsFD),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -8),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "pass"),

		// Matched: count, then redirect with XDP_PASS as the miss action.
		asm.StoreMem(asm.RFP, -4, asm.R7, asm.Word),
		asm.LoadMapPtr(asm.R1, countersFD),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "redirect"),
		asm.Mov.Imm(asm.R1, 1),
		asm.StoreXAdd(asm.R0, asm.R1, asm.DWord),
		asm.LoadMapPtr(asm.R1, xsksFD).WithSymbol("redirect"),
		asm.Mov.Reg(asm.R2, asm.R7),
		asm.Mov.Imm(asm.R3, ActionPass),
		asm.FnRedirectMap.Call(),
		asm.Return(),

		// Passed: count, return XDP_PASS.
		asm.StoreMem(asm.RFP, -4, asm.R7, asm.Word).WithSymbol("pass"),
		asm.LoadMapPtr(asm.R1, countersFD),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "out"),
		asm.Add.Imm(asm.R0, counterSz),
		asm.Mov.Imm(asm.R1, 1),
		asm.StoreXAdd(asm.R0, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R0, ActionPass).WithSymbol("out"),
		asm.Return(),
	}
}
