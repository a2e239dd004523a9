package kcp

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/flightline/flightline/bench/internal/peer"
	kcpgo "github.com/xtaci/kcp-go/v5"
	"golang.org/x/sys/unix"
)

// tune applies the package's session tuning (see the constants in kcp.go)
// to a new session, dialed or accepted: KCP's parameters are per session
// and per direction, so both ends need them.
func tune(sess *kcpgo.UDPSession) {
	sess.SetNoDelay(noDelay, interval, resend, noCongWnd)
	sess.SetWindowSize(sndWnd, rcvWnd)
	sess.SetMtu(mtu)
	// Deprecated without a replacement, and still what kcptun and kcp-go's
	// own tests use: stream mode packs small writes into full segments.
	//lint:ignore SA1019 no other way to enable stream mode
	sess.SetStreamMode(true)
	sess.SetWriteDelay(false)
	sess.SetACKNoDelay(true)
}

// setSockBuf sizes a UDP socket's kernel buffers to sockBuf. As root,
// SO_RCVBUFFORCE/SO_SNDBUFFORCE get past net.core.{r,w}mem_max (which
// quic-go does too); otherwise the plain options give what the limits allow.
func setSockBuf(c *net.UDPConn) {
	raw, err := c.SyscallConn()
	if err == nil {
		var rerr, werr error
		if err = raw.Control(func(fd uintptr) {
			rerr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, sockBuf)
			werr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, sockBuf)
		}); err == nil && rerr == nil && werr == nil {
			return
		}
	}
	_ = c.SetReadBuffer(sockBuf)
	_ = c.SetWriteBuffer(sockBuf)
}

// sessions is the sessions one side holds, and the client's sockets. They
// all close together, when the side is done or when ctx ends, which is what
// unblocks every pending Read and Write at the deadline (kcp-go has no
// context support).
type sessions struct {
	mu      sync.Mutex
	all     []*kcpgo.UDPSession
	sockets []*net.UDPConn
	closed  bool
	stop    func() bool
}

func newSessions(ctx context.Context) *sessions {
	ss := &sessions{}
	ss.stop = context.AfterFunc(ctx, ss.closeAll)
	return ss
}

// add adds sess, and its socket if the session does not share the
// listener's (sock may be nil). If the set is already closed, both are
// closed too and add reports false.
func (ss *sessions) add(sess *kcpgo.UDPSession, sock *net.UDPConn) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.closed {
		sess.Close()
		if sock != nil {
			sock.Close()
		}
		return false
	}
	ss.all = append(ss.all, sess)
	if sock != nil {
		ss.sockets = append(ss.sockets, sock)
	}
	return true
}

// snapshot returns the sessions added so far.
func (ss *sessions) snapshot() []*kcpgo.UDPSession {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return append([]*kcpgo.UDPSession(nil), ss.all...)
}

// close closes every session and socket, and any added later.
func (ss *sessions) close() {
	ss.stop()
	ss.closeAll()
}

func (ss *sessions) closeAll() {
	ss.mu.Lock()
	all, socks := ss.all, ss.sockets
	ss.all, ss.sockets, ss.closed = nil, nil, true
	ss.mu.Unlock()
	for _, sess := range all {
		sess.Close()
	}
	for _, c := range socks {
		c.Close()
	}
}

// dial opens a client session to s.Server on its own UDP socket bound to
// host A's address (the server tells sessions apart by source address, so
// every session of a multi-stream Bulk needs its own port) and exchanges
// the hello.
func dial(ctx context.Context, s *peer.Spec, block kcpgo.BlockCrypt, ss *sessions) (*kcpgo.UDPSession, error) {
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: s.Client.AsSlice()})
	if err != nil {
		return nil, fmt.Errorf("bind udp %v: %w", s.Client, err)
	}
	setSockBuf(udp)
	var conv [4]byte
	if _, err := rand.Read(conv[:]); err != nil {
		udp.Close()
		return nil, fmt.Errorf("conversation id: %w", err)
	}
	sess, err := kcpgo.NewConn3(binary.LittleEndian.Uint32(conv[:]), net.UDPAddrFromAddrPort(s.Server),
		block, dataShards, parShards, udp)
	if err != nil {
		udp.Close()
		return nil, fmt.Errorf("kcp session to %v: %w", s.Server, err)
	}
	tune(sess)
	if !ss.add(sess, udp) {
		return nil, fmt.Errorf("kcp session to %v: %w", s.Server, context.Cause(ctx))
	}
	if err := hello(sess); err != nil {
		return nil, fmt.Errorf("kcp session to %v: %w", s.Server, peer.CtxErr(ctx, err))
	}
	return sess, nil
}

// helloByte opens every session, one round trip before any measured data.
//
// KCP has no handshake: the server's session is created on the first
// packet, with kcp-go's default 32-segment receive window, and tuned only
// when Accept returns. A bulk burst can fill those 32 segments first; the
// server then advertises a zero window, and since its receive queue never
// again reaches the (now 1024-segment) window, kcp-go never sends the
// window update, so the sender waits for its 7-second window probe. One
// byte each way first means the server is tuned before data flows.
const helloByte = 'H'

// hello is the client's half of the opening exchange.
func hello(sess *kcpgo.UDPSession) error {
	if _, err := sess.Write([]byte{helloByte}); err != nil {
		return fmt.Errorf("send hello: %w", err)
	}
	var b [1]byte
	if _, err := io.ReadFull(sess, b[:]); err != nil {
		return fmt.Errorf("read hello: %w", err)
	}
	if b[0] != helloByte {
		return fmt.Errorf("hello answered with %q", b[0])
	}
	return nil
}

// answerHello is the server's half of the opening exchange.
func answerHello(sess *kcpgo.UDPSession) error {
	var b [1]byte
	if _, err := io.ReadFull(sess, b[:]); err != nil {
		return fmt.Errorf("read hello: %w", err)
	}
	if b[0] != helloByte {
		return fmt.Errorf("session opened with %q, not hello", b[0])
	}
	if _, err := sess.Write([]byte{helloByte}); err != nil {
		return fmt.Errorf("answer hello: %w", err)
	}
	return nil
}

// listener is the server side: one UDP socket on s.Server served by a
// kcp-go Listener, which creates a session for every new source address.
type listener struct {
	udp      *net.UDPConn
	ln       *kcpgo.Listener
	sessions *sessions
	stop     func() bool
	closing  sync.Once
}

// listen listens on s.Server. When ctx ends the listener, its socket and
// every accepted session close, which unblocks Accept, Read and Write.
func listen(ctx context.Context, s *peer.Spec, block kcpgo.BlockCrypt) (*listener, error) {
	udp, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(s.Server))
	if err != nil {
		return nil, fmt.Errorf("listen udp %v: %w", s.Server, err)
	}
	setSockBuf(udp)
	ln, err := kcpgo.ServeConn(block, dataShards, parShards, udp)
	if err != nil {
		udp.Close()
		return nil, fmt.Errorf("kcp listen %v: %w", s.Server, err)
	}
	l := &listener{udp: udp, ln: ln, sessions: newSessions(ctx)}
	l.stop = context.AfterFunc(ctx, l.teardown)
	return l, nil
}

// accept returns the next session, tuned, once its hello is answered.
func (l *listener) accept(ctx context.Context) (*kcpgo.UDPSession, error) {
	sess, err := l.ln.AcceptKCP()
	if err != nil {
		return nil, fmt.Errorf("accept: %w", peer.CtxErr(ctx, err))
	}
	tune(sess)
	if !l.sessions.add(sess, nil) {
		return nil, fmt.Errorf("accept: %w", context.Cause(ctx))
	}
	if err := answerHello(sess); err != nil {
		return nil, fmt.Errorf("session from %v: %w", sess.RemoteAddr(), peer.CtxErr(ctx, err))
	}
	return sess, nil
}

func (l *listener) close() {
	l.stop()
	l.teardown()
}

func (l *listener) teardown() {
	l.closing.Do(func() {
		l.sessions.close()
		l.ln.Close()
		l.udp.Close() // ServeConn does not own it
	})
}
