package testnet

import (
	"errors"
	"fmt"
	"math"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"

	"github.com/flightline/flightline/bpf"
)

// Slots of the per-direction loss map (an Array of u64). The Go side writes
// slotThreshold; the XDP program only increments the counters.
const (
	slotThreshold = 0 // drop when prandom_u32 < threshold; threshold = Loss * 2^32
	slotSeen      = 1 // packets that reached the XDP program
	slotLost      = 2 // packets dropped by loss
	lossSlots     = 3
)

// Verdicts used by the programs: XDP actions come from package bpf (one
// copy of enum xdp_action); tcShot is TC_ACT_SHOT.
const (
	xdpDrop = bpf.ActionDrop
	xdpPass = bpf.ActionPass
	tcShot  = 2
)

// lossThreshold maps a probability to the u64 the program compares a 32-bit
// random number against. Loss 1 gives 2^32, which no u32 reaches, so every
// packet drops.
func lossThreshold(p float64) uint64 {
	if p <= 0 {
		return 0
	}
	if p >= 1 {
		return 1 << 32
	}
	return uint64(math.Round(p * (1 << 32)))
}

// newLossProgram builds the XDP program of one direction:
//
//	m[seen]++
//	if prandom_u32() < m[threshold] { m[lost]++; return XDP_DROP }
//	return XDP_PASS
//
// It runs in generic mode on M's ingress interface, so it sees every frame,
// whatever sent it (kernel socket or AF_XDP), before AF_PACKET taps and tc.
func newLossProgram(m *ebpf.Map) (*ebpf.Program, error) {
	incr := func(slot int32, label string) asm.Instructions {
		return asm.Instructions{
			asm.StoreImm(asm.RFP, -4, int64(slot), asm.Word),
			asm.LoadMapPtr(asm.R1, m.FD()),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, -4),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, label),
			asm.Mov.Imm(asm.R1, 1),
			asm.StoreXAdd(asm.R0, asm.R1, asm.DWord),
		}
	}
	var insns asm.Instructions
	insns = append(insns, incr(slotSeen, "threshold")...)
	insns = append(insns,
		asm.StoreImm(asm.RFP, -4, slotThreshold, asm.Word).WithSymbol("threshold"),
		asm.LoadMapPtr(asm.R1, m.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "pass"),
		asm.LoadMem(asm.R7, asm.R0, 0, asm.DWord),
		asm.JEq.Imm(asm.R7, 0, "pass"),
		asm.FnGetPrandomU32.Call(),
		asm.LSh.Imm(asm.R0, 32), // keep only the low 32 bits
		asm.RSh.Imm(asm.R0, 32),
		asm.JGE.Reg(asm.R0, asm.R7, "pass"),
	)
	insns = append(insns, incr(slotLost, "drop")...)
	insns = append(insns,
		asm.Mov.Imm(asm.R0, xdpDrop).WithSymbol("drop"),
		asm.Return(),
		asm.Mov.Imm(asm.R0, xdpPass).WithSymbol("pass"),
		asm.Return(),
	)
	return loadProgram("fltn_loss", ebpf.XDP, insns)
}

// newForwardProgram builds the tcx ingress program of one direction. Slot 0
// of m holds the ifindex to redirect to (egress, so the tbf qdisc there
// applies); 0 means "drop here", used while the userspace hop, which got its
// copy from an AF_PACKET tap earlier in the receive path, forwards instead.
func newForwardProgram(m *ebpf.Map) (*ebpf.Program, error) {
	insns := asm.Instructions{
		asm.StoreImm(asm.RFP, -4, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, m.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "shot"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
		asm.JEq.Imm(asm.R1, 0, "shot"),
		asm.Mov.Imm(asm.R2, 0),
		asm.FnRedirect.Call(),
		asm.Return(),
		asm.Mov.Imm(asm.R0, tcShot).WithSymbol("shot"),
		asm.Return(),
	}
	return loadProgram("fltn_fwd", ebpf.SchedCLS, insns)
}

func loadProgram(name string, typ ebpf.ProgramType, insns asm.Instructions) (*ebpf.Program, error) {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: name, Type: typ, License: "GPL", Instructions: insns,
	})
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("load %s: %+v", name, ve)
		}
		return nil, fmt.Errorf("load %s: %w", name, err)
	}
	return prog, nil
}

func newU64Array(name string, n uint32) (*ebpf.Map, error) {
	m, err := ebpf.NewMap(&ebpf.MapSpec{
		Name: name, Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: n,
	})
	if err != nil {
		return nil, fmt.Errorf("create map %s: %w", name, err)
	}
	return m, nil
}

// dirBPF holds the kernel objects of one direction in M. Programs and maps
// belong to no netns; the links die with M's interfaces, and Close releases
// the rest.
type dirBPF struct {
	lossMap, fwdMap   *ebpf.Map
	lossProg, fwdProg *ebpf.Program
	xdpLink, tcxLink  link.Link
}

// attachDir loads and attaches both programs of one direction on ingress
// ifindex in (M's interface facing the sender) forwarding to out. It must run
// on a thread inside M, because link attach resolves ifindexes there.
func attachDir(in, out int) (_ *dirBPF, err error) {
	d := &dirBPF{}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	if d.lossMap, err = newU64Array("fltn_loss", lossSlots); err != nil {
		return nil, err
	}
	if d.fwdMap, err = newU64Array("fltn_fwd", 1); err != nil {
		return nil, err
	}
	if err = d.fwdMap.Put(uint32(0), uint64(out)); err != nil {
		return nil, fmt.Errorf("set forward ifindex: %w", err)
	}
	if d.lossProg, err = newLossProgram(d.lossMap); err != nil {
		return nil, err
	}
	if d.fwdProg, err = newForwardProgram(d.fwdMap); err != nil {
		return nil, err
	}
	d.xdpLink, err = link.AttachXDP(link.XDPOptions{Program: d.lossProg, Interface: in, Flags: link.XDPGenericMode})
	if err != nil {
		return nil, fmt.Errorf("attach loss xdp to ifindex %d: %w", in, err)
	}
	d.tcxLink, err = link.AttachTCX(link.TCXOptions{Program: d.fwdProg, Interface: in, Attach: ebpf.AttachTCXIngress})
	if err != nil {
		return nil, fmt.Errorf("attach forward tcx to ifindex %d: %w", in, err)
	}
	return d, nil
}

func (d *dirBPF) setLoss(p float64) error {
	if err := d.lossMap.Put(uint32(slotThreshold), lossThreshold(p)); err != nil {
		return fmt.Errorf("set loss threshold: %w", err)
	}
	return nil
}

// setForward selects kernel forwarding to ifindex out, or (out == 0) drop in
// tc because the userspace hop forwards.
func (d *dirBPF) setForward(out int) error {
	if err := d.fwdMap.Put(uint32(0), uint64(out)); err != nil {
		return fmt.Errorf("set forward ifindex: %w", err)
	}
	return nil
}

func (d *dirBPF) counters() (seen, lost uint64) {
	_ = d.lossMap.Lookup(uint32(slotSeen), &seen)
	_ = d.lossMap.Lookup(uint32(slotLost), &lost)
	return seen, lost
}

func (d *dirBPF) close() {
	// Links first, so nothing runs the programs while they are released.
	// Nil *Map and *Program Close are no-ops.
	if d.tcxLink != nil {
		_ = d.tcxLink.Close()
	}
	if d.xdpLink != nil {
		_ = d.xdpLink.Close()
	}
	_ = d.fwdProg.Close()
	_ = d.lossProg.Close()
	_ = d.fwdMap.Close()
	_ = d.lossMap.Close()
}
