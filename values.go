package main

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"time"

	"streamrelay/handler"
)

// The parsers of the configuration table. Each is a flag.Value bound to a
// config field: Set parses text from a variable or a flag, String shows the
// field as a setting would be written. A Set error says what is wanted;
// the loader adds which variable or flag was wrong.

// textValue is a string, trimmed.
type textValue struct{ p *string }

func text(p *string) textValue { return textValue{p} }

func (v textValue) Set(s string) error { *v.p = strings.TrimSpace(s); return nil }
func (v textValue) String() string {
	if v.p == nil {
		return ""
	}
	return *v.p
}

// listValue is a comma-separated list; each item must pass check, if set.
type listValue struct {
	p     *[]string
	check func(string) error
}

func list(p *[]string, check func(string) error) listValue { return listValue{p, check} }

func (v listValue) Set(s string) error {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		if v.check != nil {
			if err := v.check(item); err != nil {
				return err
			}
		}
		out = append(out, item)
	}
	*v.p = out
	return nil
}

func (v listValue) String() string {
	if v.p == nil {
		return ""
	}
	return strings.Join(*v.p, ",")
}

// proxyOrNone checks one item of TRUSTED_PROXIES: an address, a range, or
// none.
func proxyOrNone(s string) error {
	if strings.EqualFold(s, "none") {
		return nil
	}
	return ipOrCIDR(s)
}

// ipOrCIDR checks an IP address or a CIDR range.
func ipOrCIDR(s string) error {
	if net.ParseIP(s) == nil {
		if _, _, err := net.ParseCIDR(s); err != nil {
			return errors.New("must be IP addresses or CIDR ranges, separated by commas")
		}
	}
	return nil
}

// hostPortValue is a listen address.
type hostPortValue struct{ p *string }

func hostPort(p *string) hostPortValue { return hostPortValue{p} }

func (v hostPortValue) Set(s string) error {
	if _, _, err := net.SplitHostPort(s); err != nil {
		return errors.New("must be host:port, like 127.0.0.1:8080")
	}
	*v.p = s
	return nil
}

func (v hostPortValue) String() string { return textValue(v).String() }

// countValue is a whole number above 0, or with offable 0 or more, where 0
// turns the setting off (handler.Off).
type countValue[T int | int64] struct {
	p       *T
	offable bool
}

func count[T int | int64](p *T, offable bool) countValue[T] { return countValue[T]{p, offable} }

func (v countValue[T]) Set(s string) error {
	n, err := strconv.ParseInt(s, 10, 64)
	switch {
	case v.offable && (err != nil || n < 0):
		return errors.New("must be a whole number, 0 or more")
	case !v.offable && (err != nil || n <= 0):
		return errors.New("must be a whole number above 0")
	case n == 0:
		n = handler.Off
	}
	*v.p = T(n)
	return nil
}

func (v countValue[T]) String() string {
	if v.p == nil {
		return ""
	}
	return strconv.FormatInt(max(0, int64(*v.p)), 10)
}

// durationValue is a duration of at least a millisecond, or with offable
// also 0, which turns the setting off (handler.Off).
type durationValue struct {
	p       *time.Duration
	offable bool
}

func duration(p *time.Duration, offable bool) durationValue { return durationValue{p, offable} }

func (v durationValue) Set(s string) error {
	d, err := time.ParseDuration(s)
	switch {
	case v.offable && (err != nil || d < 0):
		return errors.New("must be a duration like 30s, 500ms or 10m, 0 or more")
	case !v.offable && (err != nil || d < time.Millisecond):
		return errors.New("must be a duration like 30s, 500ms or 10m, at least 1ms")
	case d == 0:
		d = handler.Off
	}
	*v.p = d
	return nil
}

// String writes the duration short: 10m, not 10m0s.
func (v durationValue) String() string {
	if v.p == nil {
		return ""
	}
	s := max(0, *v.p).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// invertedValue is a bool setting kept as its opposite, so that the field's
// zero value is the setting's default, true.
type invertedValue struct{ p *bool }

func inverted(p *bool) invertedValue { return invertedValue{p} }

func (v invertedValue) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return errors.New("must be true or false")
	}
	*v.p = !b
	return nil
}

func (v invertedValue) String() string { return strconv.FormatBool(v.p == nil || !*v.p) }

// IsBoolFlag lets the flag be given without a value: -include-usage.
func (v invertedValue) IsBoolFlag() bool { return true }

// oneOfValue is one of a few words, in any case.
type oneOfValue struct {
	p       *string
	allowed []string
}

func oneOf(p *string, allowed ...string) oneOfValue { return oneOfValue{p, allowed} }

func (v oneOfValue) Set(s string) error {
	s = strings.ToLower(s)
	for _, a := range v.allowed {
		if s == a {
			*v.p = s
			return nil
		}
	}
	return errors.New("must be one of " + strings.Join(v.allowed, ", "))
}

func (v oneOfValue) String() string { return textValue{v.p}.String() }
