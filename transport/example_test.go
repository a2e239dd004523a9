package transport_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"time"

	"github.com/flightline/flightline/transport"
)

// A server listens with its private key; a client that knows the server's
// public key dials it, opens a stream, writes a request and reads the answer.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	serverKey, err := transport.GenerateKey()
	if err != nil {
		log.Fatal(err)
	}
	ep, err := transport.Listen("127.0.0.1:0", &transport.Config{PrivateKey: serverKey})
	if err != nil {
		log.Fatal(err)
	}
	defer ep.Close()

	// Server: echo every stream of every connection, upper-cased.
	go func() {
		conn, err := ep.Accept(ctx)
		if err != nil {
			return
		}
		s, err := conn.AcceptStream(ctx)
		if err != nil {
			return
		}
		req, _ := io.ReadAll(s) // until the client closes its send side
		fmt.Fprintf(s, "hello, %s", req)
		s.Close()
	}()

	// Client: an ephemeral endpoint, one connection, one stream.
	conn, err := transport.Dial(ctx, ep.LocalAddr().String(), serverKey.Public(), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Endpoint().Close()
	s, err := conn.OpenStream()
	if err != nil {
		log.Fatal(err)
	}
	io.WriteString(s, "flightline")
	s.Close() // FIN: the server's ReadAll returns
	answer, err := io.ReadAll(s)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(answer))
	// Output: hello, flightline
}

// Short messages travel reliably without opening a stream.
func ExampleConn_SendMessage() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	key, _ := transport.GenerateKey()
	ep, err := transport.Listen("127.0.0.1:0", &transport.Config{PrivateKey: key})
	if err != nil {
		log.Fatal(err)
	}
	defer ep.Close()
	go func() {
		conn, err := ep.Accept(ctx)
		if err != nil {
			return
		}
		m, err := conn.ReceiveMessage(ctx)
		if err != nil {
			return
		}
		conn.SendMessage(append([]byte("ack: "), m...))
	}()

	conn, err := transport.Dial(ctx, ep.LocalAddr().String(), key.Public(), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Endpoint().Close()
	if err := conn.SendMessage([]byte("ping")); err != nil {
		log.Fatal(err)
	}
	m, err := conn.ReceiveMessage(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(m))
	// Output: ack: ping
}
