package e2e

import (
	"context"
	"io"
	"net"
	"sync"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// cutoff forwards TCP to the API server and can cut it off: while cut, connections are
// refused and open ones are dropped, as when kube-apiserver is down.
type cutoff struct {
	addr, target string
	mu           sync.Mutex
	listener     net.Listener
	conns        map[net.Conn]struct{}
}

func newCutoff(target string) *cutoff {
	GinkgoHelper()
	c := &cutoff{target: target, conns: map[net.Conn]struct{}{}}
	c.listen("127.0.0.1:0")
	c.addr = c.listener.Addr().String()
	DeferCleanup(c.cut)
	return c
}

func (c *cutoff) listen(addr string) {
	GinkgoHelper()
	l, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", addr)
	Expect(err).NotTo(HaveOccurred())
	c.mu.Lock()
	c.listener = l
	c.mu.Unlock()
	go c.accept(l)
}

func (c *cutoff) accept(l net.Listener) {
	for {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		go c.forward(conn)
	}
}

func (c *cutoff) forward(in net.Conn) {
	out, err := (&net.Dialer{}).DialContext(context.Background(), "tcp", c.target)
	if err != nil {
		_ = in.Close()
		return
	}
	c.track(in, out)
	go func() { _, _ = io.Copy(out, in); _ = out.Close() }()
	_, _ = io.Copy(in, out)
	_ = in.Close()
}

func (c *cutoff) track(conns ...net.Conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, conn := range conns {
		c.conns[conn] = struct{}{}
	}
}

// cut refuses new connections and drops open ones.
func (c *cutoff) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.listener != nil {
		_ = c.listener.Close()
		c.listener = nil
	}
	for conn := range c.conns {
		_ = conn.Close()
	}
	c.conns = map[net.Conn]struct{}{}
}

// restore accepts connections again, on the same address.
func (c *cutoff) restore() {
	GinkgoHelper()
	c.listen(c.addr)
}
