package webhook

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// SenderConfig configures a Sender.
type SenderConfig struct {
	// Secret keys the signatures. Required.
	Secret []byte
	// Guard decides which addresses a delivery may connect to.
	Guard Guard
	// RootCAs, if set, are the certificate authorities trusted for receivers'
	// certificates; nil means the system's.
	RootCAs *x509.CertPool
	// Timeout bounds one delivery attempt. Default 10s.
	Timeout time.Duration
}

// Sender delivers events over HTTP.
type Sender struct {
	secret []byte
	guard  *Guard
	client *http.Client
}

// NewSender returns a sender whose HTTP client connects only to addresses the
// guard allows (checked when connecting, whatever a name resolved to when it
// was registered), uses no proxy, and follows no redirects.
func NewSender(cfg SenderConfig) *Sender {
	g := cfg.Guard
	tr := &http.Transport{
		Proxy:                 nil, // a proxy would make the guard check the proxy's address
		DialContext:           g.DialContext,
		TLSClientConfig:       &tls.Config{RootCAs: cfg.RootCAs, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: cmp.Or(cfg.Timeout, 10*time.Second),
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       30 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &Sender{
		secret: cfg.Secret,
		guard:  &g,
		client: &http.Client{
			Transport: tr,
			Timeout:   cmp.Or(cfg.Timeout, 10*time.Second),
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse // a redirect is an answer that is not 2xx
			},
		},
	}
}

// StatusError is a delivery the receiver answered with a status that is not 2xx.
type StatusError struct {
	Code int
	Body string // its start, for the task's error
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("receiver answered %d: %q", e.Code, e.Body)
}

// Deliver posts a signed event body to url. A 2xx answer is a delivery;
// anything else is an error (retried by the caller). An error wrapping
// ErrForbiddenAddress means no connection was made.
func (s *Sender) Deliver(ctx context.Context, url, eventID, eventType string, body []byte) error {
	// The scheme may have been allowed at registration only under settings that
	// have changed since; the addresses are checked when connecting.
	if err := s.checkScheme(url); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "oneshot-webhooks/1")
	req.Header.Set(EventHeader, eventType)
	req.Header.Set(DeliveryHeader, eventID)
	req.Header.Set(SignatureHeader, Sign(s.secret, time.Now(), body))
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	head, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &StatusError{Code: resp.StatusCode, Body: string(head)}
	}
	return nil
}

func (s *Sender) checkScheme(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrForbiddenAddress, err)
	}
	if u.Scheme == "https" || u.Scheme == "http" && s.guard.AllowLoopback {
		return nil
	}
	return fmt.Errorf("%w: scheme %q (only https)", ErrForbiddenAddress, u.Scheme)
}
