// Package webhook tells other servers about a run's changes: it checks the
// URLs they register (https, never a private address), builds and signs the
// events, and delivers them over an HTTP client that refuses, at connect
// time, every address a URL could not have been registered with.
package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
)

// ErrForbiddenAddress is returned for a URL whose host is, or resolves to, an
// address webhooks may not reach (private, loopback, link-local, ...).
var ErrForbiddenAddress = errors.New("address not allowed for webhooks")

// Resolver resolves host names; *net.Resolver is one. Tests give a stub, so
// that no name is looked up on the network.
type Resolver interface {
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
}

// Guard decides which webhook URLs and addresses are allowed. The zero value
// allows https URLs to public addresses, resolved by net.DefaultResolver.
type Guard struct {
	// Resolver looks up host names. Default net.DefaultResolver.
	Resolver Resolver
	// AllowLoopback allows loopback addresses and plain http, for local
	// development only (ONESHOT_WEBHOOK_ALLOW_LOOPBACK).
	AllowLoopback bool
}

func (g *Guard) resolver() Resolver {
	if g.Resolver == nil {
		return net.DefaultResolver
	}
	return g.Resolver
}

// blocked are the ranges never reachable by a webhook, besides those
// netip.Addr classifies (loopback, private, link-local, multicast, unspecified).
var blocked = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, broadcast
	netip.MustParsePrefix("::/96"),           // IPv4-compatible (deprecated), ::, ::1
	netip.MustParsePrefix("100::/64"),        // discard
	netip.MustParsePrefix("2001::/32"),       // Teredo
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("fc00::/7"),        // unique local
	netip.MustParsePrefix("fec0::/10"),       // site-local (deprecated)
}

// embedsIPv4 are IPv6 ranges that carry an IPv4 address, which must itself
// be allowed: NAT64 (the last 32 bits) and 6to4 (bits 16-48).
var (
	nat64     = []netip.Prefix{netip.MustParsePrefix("64:ff9b::/96"), netip.MustParsePrefix("64:ff9b:1::/48")}
	sixToFour = netip.MustParsePrefix("2002::/16")
)

const loopbackHint = "loopback addresses are allowed only with ONESHOT_WEBHOOK_ALLOW_LOOPBACK=true (local development)"

// CheckIP returns nil if a webhook may connect to ip.
func (g *Guard) CheckIP(ip netip.Addr) error {
	if !ip.IsValid() {
		return fmt.Errorf("%w: invalid address", ErrForbiddenAddress)
	}
	if ip.Zone() != "" {
		return fmt.Errorf("%w: %s has a zone", ErrForbiddenAddress, ip)
	}
	ip = ip.Unmap() // ::ffff:10.0.0.1 is 10.0.0.1
	if ip.IsLoopback() {
		if g.AllowLoopback {
			return nil
		}
		return fmt.Errorf("%w: %s is a loopback address; %s", ErrForbiddenAddress, ip, loopbackHint)
	}
	if reason := classify(ip); reason != "" {
		return fmt.Errorf("%w: %s is %s", ErrForbiddenAddress, ip, reason)
	}
	if ip.Is6() {
		b := ip.As16()
		for _, p := range nat64 {
			if p.Contains(ip) {
				return g.CheckIP(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}))
			}
		}
		if sixToFour.Contains(ip) {
			return g.CheckIP(netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}))
		}
	}
	return nil
}

func classify(ip netip.Addr) string {
	switch {
	case ip.IsUnspecified():
		return "the unspecified address"
	case ip.IsPrivate():
		return "a private address"
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast():
		return "a link-local address"
	case ip.IsMulticast(), ip.IsInterfaceLocalMulticast():
		return "a multicast address"
	}
	for _, p := range blocked {
		if p.Contains(ip) {
			return "in a reserved range (" + p.String() + ")"
		}
	}
	return ""
}

// CheckURL checks a URL a client registers: absolute, https (http too with
// AllowLoopback), no credentials, and a host whose every address is allowed.
// Its error says what is wrong, for the client.
func (g *Guard) CheckURL(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("not a valid URL: %v", err)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && g.AllowLoopback:
	case u.Scheme == "http":
		return errors.New("must be an https URL")
	default:
		return fmt.Errorf("must be an https URL, not %q", u.Scheme)
	}
	if u.Host == "" || u.Opaque != "" {
		return errors.New("must be an absolute URL with a host, e.g. https://example.com/hooks")
	}
	if u.User != nil {
		return errors.New("must not hold credentials (user:password@); use the signature header to authenticate deliveries")
	}
	if len(raw) > 2048 {
		return errors.New("is longer than 2048 characters")
	}
	_, err = g.resolve(ctx, u.Hostname())
	return err
}

// resolve returns the allowed addresses of host, or an error if it has none
// or any of its addresses is not allowed (one bad answer is enough to refuse:
// a name that points inside is suspect whatever else it points at).
func (g *Guard) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	host = strings.TrimSuffix(host, ".")
	if host == "" {
		return nil, errors.New("has no host")
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if err := g.CheckIP(ip); err != nil {
			return nil, err
		}
		return []netip.Addr{ip.Unmap()}, nil
	}
	addrs, err := g.resolver().LookupIPAddr(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("host %q does not resolve: %v", host, err)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("host %q has no address", host)
	}
	ips := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			return nil, fmt.Errorf("%w: host %q resolves to an invalid address", ErrForbiddenAddress, host)
		}
		if err := g.CheckIP(ip); err != nil {
			return nil, fmt.Errorf("host %q: %w", host, err)
		}
		ips = append(ips, ip.Unmap())
	}
	return ips, nil
}

// DialContext connects to addr ("host:port") like net.Dialer, but only to
// allowed addresses: it resolves the host itself, checks every address, and
// connects to a checked address (not to the name, which could resolve
// differently a moment later). The dialer's Control checks the address of
// the socket once more, right before connect.
func (g *Guard) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	ips, err := g.resolve(ctx, host)
	if err != nil {
		return nil, err
	}
	d := &net.Dialer{Control: g.control}
	var firstErr error
	for _, ip := range ips {
		conn, err := d.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
		if err == nil {
			return conn, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, firstErr
}

// control runs before each connect with the address actually dialed.
func (g *Guard) control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrForbiddenAddress, address)
	}
	return g.CheckIP(ap.Addr())
}
