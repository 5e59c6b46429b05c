package wxpaytest

import (
	"fmt"
	"net/http"
	"net/netip"
	"slices"
)

// NoAuthCallerIP is WeChat's err_code_des for NO_AUTH when the request
// comes from an address the merchant has not set as a caller IP.
const NoAuthCallerIP = "IP地址非你在商户平台设置的可用IP地址"

// MaxCallerIPs is how many caller IP addresses the merchant platform takes.
const MaxCallerIPs = 10

// WithCallerIPs sets Config.CallerIPs, the merchant's caller-IP allowlist.
func WithCallerIPs(ips ...netip.Addr) Option {
	return func(c *Config) { c.CallerIPs = append(c.CallerIPs, ips...) }
}

// CallerIPs returns the merchant's caller-IP allowlist; empty when every
// address may call.
func (s *Server) CallerIPs() []netip.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.callerIPs)
}

// SetCallerIPs replaces the merchant's caller-IP allowlist, as the merchant
// does under 产品中心 → 现金红包 → 产品设置 (at WeChat the change takes
// some minutes; here, the next request). No addresses allow every one.
func (s *Server) SetCallerIPs(ips ...netip.Addr) error {
	list, err := callerIPList(ips)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.callerIPs = list
	return nil
}

// callerIPList checks an allowlist: valid addresses, at most MaxCallerIPs,
// IPv4-mapped IPv6 addresses as IPv4.
func callerIPList(ips []netip.Addr) ([]netip.Addr, error) {
	if len(ips) > MaxCallerIPs {
		return nil, fmt.Errorf("wxpaytest: %d caller IPs, the merchant platform takes at most %d", len(ips), MaxCallerIPs)
	}
	list := make([]netip.Addr, 0, len(ips))
	for _, ip := range ips {
		if !ip.IsValid() {
			return nil, fmt.Errorf("wxpaytest: invalid caller IP %v", ip)
		}
		list = append(list, ip.Unmap())
	}
	return list, nil
}

// remoteAddr is the address a request came from (invalid if unreadable).
func remoteAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// callerAllowed reports whether the merchant's allowlist lets remote call:
// always with no allowlist.
func (s *Server) callerAllowed(remote netip.Addr) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.callerIPs) == 0 || slices.Contains(s.callerIPs, remote)
}
