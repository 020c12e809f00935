package redeem

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"
)

// Runnable serves the redemption server on an address until its context ends. Every
// replica runs it; it needs no leadership.
type Runnable struct {
	Server *Server
	// Addr is where to listen, such as ":8082".
	Addr string
	// Listener, when set, is used instead of Addr (tests pass one on a free port).
	Listener net.Listener
}

// Start implements manager.Runnable.
func (r *Runnable) Start(ctx context.Context) error {
	srv := &http.Server{
		Addr:              r.Addr,
		Handler:           r.Server.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      40 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	errs := make(chan error, 1)
	go func() {
		var err error
		if r.Listener != nil {
			err = srv.Serve(r.Listener)
		} else {
			err = srv.ListenAndServe()
		}
		if !errors.Is(err, http.ErrServerClosed) {
			errs <- err
		}
		close(errs)
	}()
	select {
	case err := <-errs:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown) //nolint:contextcheck // the manager's context is already done
}

// NeedLeaderElection is false: every replica serves redemptions.
func (r *Runnable) NeedLeaderElection() bool { return false }
