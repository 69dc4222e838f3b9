package webhook

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// stubResolver answers from a map and counts lookups; it never touches the network.
type stubResolver struct {
	names   map[string][]string
	lookups atomic.Int32
}

func (r *stubResolver) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	r.lookups.Add(1)
	ips, ok := r.names[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	var out []net.IPAddr
	for _, s := range ips {
		out = append(out, net.IPAddr{IP: net.ParseIP(s)})
	}
	return out, nil
}

func TestCheckIP(t *testing.T) {
	t.Parallel()
	tests := []struct {
		ip            string
		allowed       bool
		allowLoopback bool
	}{
		{ip: "93.184.216.34", allowed: true},
		{ip: "2606:2800:220:1:248:1893:25c8:1946", allowed: true},
		{ip: "127.0.0.1"},
		{ip: "127.0.0.1", allowLoopback: true, allowed: true},
		{ip: "127.8.9.10"},
		{ip: "::1"},
		{ip: "::1", allowLoopback: true, allowed: true},
		{ip: "10.1.2.3"},
		{ip: "10.1.2.3", allowLoopback: true}, // loopback only, never private
		{ip: "172.16.0.1"},
		{ip: "172.31.255.255"},
		{ip: "192.168.1.1"},
		{ip: "169.254.169.254"}, // cloud metadata
		{ip: "100.64.0.1"},
		{ip: "100.127.255.255"},
		{ip: "0.0.0.0"},
		{ip: "0.1.2.3"},
		{ip: "224.0.0.1"},
		{ip: "239.255.255.250"},
		{ip: "255.255.255.255"},
		{ip: "198.18.0.1"},
		{ip: "::"},
		{ip: "fe80::1"},
		{ip: "fc00::1"},
		{ip: "fd12:3456::1"},
		{ip: "ff02::1"},
		{ip: "::ffff:10.0.0.1"},
		{ip: "::ffff:127.0.0.1"},
		{ip: "::ffff:169.254.169.254"},
		{ip: "::ffff:93.184.216.34", allowed: true},
		{ip: "64:ff9b::a00:1"},                    // NAT64 of 10.0.0.1
		{ip: "64:ff9b::5db8:d822", allowed: true}, // NAT64 of 93.184.216.34
		{ip: "2002:a00:1::1"},                     // 6to4 of 10.0.0.1
		{ip: "::10.0.0.1"},                        // IPv4-compatible
	}
	for _, tt := range tests {
		t.Run(tt.ip, func(t *testing.T) {
			g := &Guard{AllowLoopback: tt.allowLoopback}
			err := g.CheckIP(netip.MustParseAddr(tt.ip))
			if tt.allowed {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, ErrForbiddenAddress)
			}
		})
	}
}

func TestCheckURL(t *testing.T) {
	t.Parallel()
	res := &stubResolver{names: map[string][]string{
		"hooks.example.com": {"93.184.216.34"},
		"internal.example":  {"10.0.0.7"},
		"mixed.example":     {"93.184.216.34", "192.168.0.1"},
		"rebind.example":    {"::ffff:127.0.0.1"},
	}}
	tests := []struct {
		name, url     string
		allowLoopback bool
		wantErr       string // "" = allowed
	}{
		{name: "public https", url: "https://hooks.example.com/x"},
		{name: "public ip", url: "https://93.184.216.34:8443/x"},
		{name: "http refused", url: "http://hooks.example.com/x", wantErr: "https"},
		{name: "http with loopback allowed", url: "http://hooks.example.com/x", allowLoopback: true},
		{name: "ftp", url: "ftp://hooks.example.com/x", wantErr: "https"},
		{name: "relative", url: "/hooks", wantErr: "https"},
		{name: "no host", url: "https:///x", wantErr: "absolute"},
		{name: "credentials", url: "https://u:p@hooks.example.com/", wantErr: "credentials"},
		{name: "private name", url: "https://internal.example/x", wantErr: "private"},
		{name: "one private answer is enough", url: "https://mixed.example/x", wantErr: "private"},
		{name: "mapped loopback name", url: "https://rebind.example/x", wantErr: "loopback"},
		{name: "loopback ip", url: "https://127.0.0.1/x", wantErr: "ONESHOT_WEBHOOK_ALLOW_LOOPBACK"},
		{name: "loopback allowed", url: "https://127.0.0.1:9/x", allowLoopback: true},
		{name: "ipv6 loopback", url: "https://[::1]/x", wantErr: "loopback"},
		{name: "ipv6 ula", url: "https://[fc00::1]/x", wantErr: "private"},
		{name: "ipv6 mapped private", url: "https://[::ffff:10.0.0.1]/x", wantErr: "private"},
		{name: "ipv6 zone", url: "https://[fe80::1%25eth0]/x", wantErr: "zone"},
		{name: "metadata", url: "https://169.254.169.254/latest", wantErr: "link-local"},
		{name: "cgnat", url: "https://100.64.1.1/", wantErr: "100.64.0.0/10"},
		{name: "unknown name", url: "https://nowhere.example/", wantErr: "does not resolve"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := &Guard{Resolver: res, AllowLoopback: tt.allowLoopback}
			err := g.CheckURL(context.Background(), tt.url)
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			require.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

// A name that resolved to a public address at registration and resolves to a
// private or loopback one at delivery (DNS rebinding) is refused before any
// connection is made.
func TestDeliveryRefusesRebindingBeforeConnecting(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port

	res := &stubResolver{names: map[string][]string{"hooks.example.com": {"93.184.216.34"}}}
	sender := NewSender(SenderConfig{Secret: []byte("s"), Guard: Guard{Resolver: res}, Timeout: 2 * time.Second})
	url := "https://hooks.example.com:" + strconv.Itoa(port) + "/hook"
	require.NoError(t, sender.guard.CheckURL(context.Background(), url), "registration passes")

	for _, target := range []string{"127.0.0.1", "10.0.0.1", "::ffff:127.0.0.1", "169.254.169.254"} {
		res.names["hooks.example.com"] = []string{target}
		err := sender.Deliver(context.Background(), url, "evt_1", "agent.run.completed", []byte(`{}`))
		require.ErrorIs(t, err, ErrForbiddenAddress, target)
	}
	require.NoError(t, ln.(*net.TCPListener).SetDeadline(time.Now().Add(50*time.Millisecond)))
	conn, err := ln.Accept()
	if conn != nil {
		conn.Close()
	}
	var ne net.Error
	require.True(t, errors.As(err, &ne) && ne.Timeout(), "no connection reached the listener: %v", err)
}

// The dialer's Control refuses a forbidden address even when the dial is
// handed an address that skipped resolution.
func TestControlRefusesForbiddenAddress(t *testing.T) {
	t.Parallel()
	g := &Guard{}
	require.ErrorIs(t, g.control("tcp4", "127.0.0.1:443", nil), ErrForbiddenAddress)
	require.ErrorIs(t, g.control("tcp6", "[::ffff:10.0.0.1]:443", nil), ErrForbiddenAddress)
	require.ErrorIs(t, g.control("tcp6", "[fd00::1]:443", nil), ErrForbiddenAddress)
	require.NoError(t, g.control("tcp4", "93.184.216.34:443", nil))
	d := &net.Dialer{Control: g.control}
	_, err := d.Dial("tcp", "127.0.0.1:9")
	require.ErrorIs(t, err, ErrForbiddenAddress)
}

func TestDeliverSignsAndReportsStatus(t *testing.T) {
	t.Parallel()
	var got atomic.Pointer[http.Request]
	var gotBody atomic.Pointer[[]byte]
	code := atomic.Int32{}
	code.Store(204)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.Store(r)
		gotBody.Store(&b)
		w.WriteHeader(int(code.Load()))
	}))
	defer srv.Close()
	pool := srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	sender := NewSender(SenderConfig{Secret: []byte("topsecret"), Guard: Guard{AllowLoopback: true}, RootCAs: pool})

	body := []byte(`{"id":"evt_1","type":"agent.run.completed"}`)
	require.NoError(t, sender.Deliver(context.Background(), srv.URL+"/hook", "evt_1", "agent.run.completed", body))
	r := got.Load()
	require.Equal(t, "evt_1", r.Header.Get(DeliveryHeader))
	require.Equal(t, "agent.run.completed", r.Header.Get(EventHeader))
	require.Equal(t, "application/json", r.Header.Get("Content-Type"))
	require.Equal(t, body, *gotBody.Load())
	require.NoError(t, Verify([]byte("topsecret"), r.Header.Get(SignatureHeader), body, 5*time.Minute, time.Now()))
	require.ErrorIs(t, Verify([]byte("other"), r.Header.Get(SignatureHeader), body, 5*time.Minute, time.Now()), ErrBadSignature)

	code.Store(500)
	err := sender.Deliver(context.Background(), srv.URL+"/hook", "evt_1", "agent.run.completed", body)
	var se *StatusError
	require.ErrorAs(t, err, &se)
	require.Equal(t, 500, se.Code)

	// Without AllowLoopback the same server is refused, and so is http.
	strict := NewSender(SenderConfig{Secret: []byte("s"), RootCAs: pool})
	require.ErrorIs(t, strict.Deliver(context.Background(), srv.URL, "e", "t", body), ErrForbiddenAddress)
	require.ErrorIs(t, strict.Deliver(context.Background(), "http://93.184.216.34/", "e", "t", body), ErrForbiddenAddress)
	u, _ := url.Parse(srv.URL)
	require.Equal(t, "https", u.Scheme)
}

func TestVerify(t *testing.T) {
	t.Parallel()
	secret := []byte("k")
	body := []byte(`{"a":1}`)
	now := time.Unix(1_700_000_000, 0)
	h := Sign(secret, now, body)
	require.NoError(t, Verify(secret, h, body, time.Minute, now.Add(30*time.Second)))
	require.ErrorIs(t, Verify(secret, h, body, time.Minute, now.Add(2*time.Minute)), ErrBadSignature, "too old")
	require.ErrorIs(t, Verify(secret, h, []byte(`{"a":2}`), 0, now), ErrBadSignature, "body changed")
	require.ErrorIs(t, Verify(secret, "garbage", body, 0, now), ErrBadSignature)
	require.ErrorIs(t, Verify(secret, "t=1,v1=zz", body, 0, now), ErrBadSignature)
}
