package wxpay

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"crypto/subtle"
	"slices"
	"strings"
)

// SignType names an APIv2 signature algorithm, as carried in the sign_type
// field.
type SignType string

// The APIv2 signature algorithms. Red packet calls use MD5 and send no
// sign_type at all.
const (
	SignMD5        SignType = "MD5"
	SignHMACSHA256 SignType = "HMAC-SHA256"
)

// Params is a flat APIv2 document: field name to logical (unescaped) value.
type Params map[string]string

// field is one name/value pair of a document being built. Requests keep
// their fields in a fixed, already sorted order so that signing needs
// neither a map nor a sort.
type field struct {
	name, value string
}

// Sign returns the APIv2 signature of params with the merchant's APIv2 key:
// the fields with non-empty values, sign excluded, sorted bytewise by name,
// joined as k=v&..., followed by &key=<key>, hashed with t and written as
// upper-case hex. An unknown SignType signs with MD5, as WeChat does.
func Sign(params Params, key string, t SignType) string {
	var out [2 * sha256.Size]byte
	return string(appendSign(out[:0], params, key, t))
}

// VerifySign reports whether params carries a valid sign for key, using
// the algorithm named by its sign_type field (MD5 when absent). The
// comparison takes constant time.
func VerifySign(params Params, key string) bool {
	got := params["sign"]
	if got == "" {
		return false
	}
	t := SignType(params["sign_type"])
	if t == "" {
		t = SignMD5
	}
	var want [2 * sha256.Size]byte
	return subtle.ConstantTimeCompare([]byte(strings.ToUpper(got)), appendSign(want[:0], params, key, t)) == 1
}

// appendSign appends the upper-case hex signature of params to dst.
func appendSign(dst []byte, params Params, key string, t SignType) []byte {
	// An answer has a dozen or two fields: they are sorted in an array on
	// the stack, which only a larger document outgrows.
	var buf [32]field
	fields := buf[:0]
	for name, value := range params {
		if value != "" && name != "sign" {
			fields = append(fields, field{name, value})
		}
	}
	slices.SortFunc(fields, func(a, b field) int { return strings.Compare(a.name, b.name) })
	return signFields(dst, fields, key, t)
}

// signFields appends the upper-case hex signature of fields, which must be
// sorted by name, to dst. Empty values and a sign field are skipped.
func signFields(dst []byte, fields []field, key string, t SignType) []byte {
	if t == SignHMACSHA256 {
		mac := hmac.New(sha256.New, []byte(key))
		mac.Write(appendSignString(nil, fields, key))
		return appendUpperHex(dst, mac.Sum(nil))
	}
	// A request's string to sign is a few hundred bytes: build it on the
	// stack (md5.Sum does not keep it).
	var stack [1024]byte
	sum := md5.Sum(appendSignString(stack[:0], fields, key))
	return appendUpperHex(dst, sum[:])
}

// appendSignString appends the APIv2 string to sign to buf: k=v& for each
// non-empty field but sign, in the given order, then key=<key>.
func appendSignString(buf []byte, fields []field, key string) []byte {
	for _, f := range fields {
		if f.value == "" || f.name == "sign" {
			continue
		}
		buf = append(buf, f.name...)
		buf = append(buf, '=')
		buf = append(buf, f.value...)
		buf = append(buf, '&')
	}
	buf = append(buf, "key="...)
	return append(buf, key...)
}

// appendUpperHex appends the upper-case hex form of src to dst.
func appendUpperHex(dst, src []byte) []byte {
	const digits = "0123456789ABCDEF"
	for _, b := range src {
		dst = append(dst, digits[b>>4], digits[b&0x0f])
	}
	return dst
}
