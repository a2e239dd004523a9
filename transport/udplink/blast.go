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

	"github.com/flightline/flightline/transport/link"
)

// blastIdle is how long Blast's receiver waits for stragglers after the
// sender finished and nothing arrived; whatever is missing then is loss.
const blastIdle = 50 * time.Millisecond

// BlastResult is the outcome of one Blast: the raw datapath ceiling that the
// transport's goodput is compared with.
type BlastResult struct {
	Sent     int64         // datagrams WriteBatch handed to the kernel
	Packets  int64         // datagrams received
	Bytes    int64         // payload bytes received
	Lost     int64         // Sent - Packets (kernel drops: rx buffer overrun)
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
// goroutine drains rx with ReadBatch. It returns when everything arrived, or
// blastIdle after the sender finished without further arrivals, or when ctx
// is done (then with ctx.Err() and the partial result).
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
	start := time.Now()
	lastRecv.Store(start.UnixNano())
	wg.Add(1)
	go func() {
		defer wg.Done()
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
	sendEnd := time.Now().UnixNano()
wait:
	for {
		select {
		case <-done:
			break wait
		case <-ctx.Done():
		case <-tick.C:
			if got.Load() < sent && time.Now().UnixNano()-max(sendEnd, lastRecv.Load()) < int64(blastIdle) {
				continue
			}
		}
		_ = rx.conn.SetReadDeadline(time.Unix(1, 0)) // unblock the receiver
		<-done
		break
	}
	_ = rx.conn.SetReadDeadline(time.Time{})

	res := BlastResult{
		Sent:     sent,
		Packets:  got.Load(),
		Bytes:    gotBytes.Load(),
		Duration: time.Duration(lastRecv.Load() - start.UnixNano()),
	}
	res.Lost = max(res.Sent-res.Packets, 0)
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
