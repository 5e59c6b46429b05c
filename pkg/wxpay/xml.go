package wxpay

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"
)

// MaxBodySize bounds an APIv2 document, request or response. Red packet
// answers are a few hundred bytes; a group record with twenty receivers is a
// few kilobytes.
const MaxBodySize = 64 << 10

// ErrMalformedXML is matched (errors.Is) by every *XMLError.
var ErrMalformedXML = errors.New("wxpay: not an APIv2 <xml> document")

// XMLError says why a body is not a flat APIv2 <xml> document.
type XMLError struct {
	// Reason is a short description, such as "truncated document" or
	// "repeated element <mch_id>".
	Reason string
	// HTML is set when the body is an HTML page, as WeChat's gateway
	// answers certificate problems.
	HTML bool
	// Err is the underlying parser error, if any.
	Err error
}

// Error says why the body is not an APIv2 document.
func (e *XMLError) Error() string {
	if e.Err != nil {
		return "wxpay: malformed XML: " + e.Reason + ": " + e.Err.Error()
	}
	return "wxpay: malformed XML: " + e.Reason
}

// Is makes errors.Is(err, ErrMalformedXML) true for every *XMLError.
func (e *XMLError) Is(target error) bool { return target == ErrMalformedXML }

// Unwrap returns the parser error.
func (e *XMLError) Unwrap() error { return e.Err }

// EncodeXML encodes params as a flat <xml> document, fields sorted by name,
// empty values omitted. Values are written as plain text when they need no
// escaping, in CDATA when they contain markup characters, and as escaped
// text when CDATA cannot hold them (a "]]>" or a carriage return, which XML
// parsers would otherwise change), so every valid UTF-8 value round-trips.
// A name that is not a simple XML name or a value with characters XML
// cannot carry is an error.
func EncodeXML(params Params) ([]byte, error) {
	names := make([]string, 0, len(params))
	for name, value := range params {
		if !validName(name) {
			return nil, fmt.Errorf("wxpay: encode XML: invalid element name %q", name)
		}
		if !ValidText(value) {
			return nil, fmt.Errorf("wxpay: encode XML: field %s: value is not valid XML text", name)
		}
		if value != "" {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	fields := make([]field, len(names))
	for i, name := range names {
		fields[i] = field{name, params[name]}
	}
	return appendXML(nil, fields), nil
}

// appendXML appends the <xml> document of fields (non-empty values only) to
// dst. Names and values must already be valid.
func appendXML(dst []byte, fields []field) []byte {
	dst = append(dst, "<xml>"...)
	for _, f := range fields {
		if f.value == "" {
			continue
		}
		dst = appendElement(dst, f.name, f.value)
	}
	return append(dst, "</xml>"...)
}

// appendElement appends <name>value</name>, choosing the value's form.
func appendElement(dst []byte, name, value string) []byte {
	dst = append(dst, '<')
	dst = append(dst, name...)
	dst = append(dst, '>')
	switch textForm(value) {
	case formPlain:
		dst = append(dst, value...)
	case formCDATA:
		dst = append(dst, "<![CDATA["...)
		dst = append(dst, value...)
		dst = append(dst, "]]>"...)
	default:
		dst = appendEscaped(dst, value)
	}
	dst = append(dst, "</"...)
	dst = append(dst, name...)
	return append(dst, '>')
}

// The forms a value is written in.
const (
	formPlain   = iota // no markup characters: as is
	formCDATA          // markup, but no "]]>" and no carriage return
	formEscaped        // entity escapes
)

// textForm chooses how to write value, in one pass: plain text when it has
// none of < > & and CR, CDATA when it has markup that CDATA can hold, and
// escaped text when it holds "]]>" or a carriage return (which parsers turn
// into a line feed inside CDATA and plain text).
func textForm(value string) int {
	form := formPlain
	for i := 0; i < len(value); i++ {
		switch value[i] {
		case '<', '&':
			form = formCDATA
		case '>':
			if i >= 2 && value[i-1] == ']' && value[i-2] == ']' {
				return formEscaped
			}
			form = formCDATA
		case '\r':
			return formEscaped
		}
	}
	return form
}

// appendEscaped appends value as XML character data with entity escapes.
func appendEscaped(dst []byte, value string) []byte {
	for i := 0; i < len(value); i++ {
		switch c := value[i]; c {
		case '<':
			dst = append(dst, "&lt;"...)
		case '>':
			dst = append(dst, "&gt;"...)
		case '&':
			dst = append(dst, "&amp;"...)
		case '\r':
			dst = append(dst, "&#xD;"...)
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// ValidText reports whether s is valid UTF-8 made only of characters XML 1.0
// can carry. WeChat's fields must be; a value that is not cannot be sent
// unchanged, and its signature would not match.
func ValidText(s string) bool {
	for i, r := range s {
		switch {
		case r == utf8.RuneError:
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				return false
			}
		case r == '\t', r == '\n', r == '\r':
		case r < 0x20, r > 0xD7FF && r < 0xE000, r == 0xFFFE, r == 0xFFFF:
			return false
		}
	}
	return true
}

// validName reports whether name is a plain element name: an ASCII letter
// or underscore, then letters, digits and underscores.
func validName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// DecodeXML decodes a flat APIv2 <xml> document: one root element named xml
// whose children each hold text or CDATA and have plain names (an ASCII
// letter or underscore, then letters, digits and underscores; no namespace
// prefix), the names EncodeXML writes. An XML declaration and comments are
// accepted; anything else (an HTML page, a truncated document, nested or
// repeated elements, other element names, trailing content, a body over
// MaxBodySize) is an *XMLError.
func DecodeXML(data []byte) (Params, error) {
	params, _, err := decodeXML(data, "", "")
	return params, err
}

// DecodeXMLRecords decodes an APIv2 document whose element named container
// holds repeated flat records named item (gethbinfo's <hblist> of
// <hbinfo>). Every other element is flat, as for DecodeXML.
func DecodeXMLRecords(data []byte, container, item string) (Params, []Params, error) {
	return decodeXML(data, container, item)
}

func decodeXML(data []byte, container, item string) (Params, []Params, error) {
	if len(data) > MaxBodySize {
		return nil, nil, &XMLError{Reason: fmt.Sprintf("body of %d bytes exceeds %d", len(data), MaxBodySize)}
	}
	if looksLikeHTML(data) {
		return nil, nil, &XMLError{Reason: "an HTML page", HTML: true}
	}
	if params, records, ok := fastDecode(data, container, item); ok {
		return params, records, nil
	}
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true
	p := &flatParser{d: d}
	params, records, err := p.document(container, item)
	if err != nil {
		// No partial result: document may have read the fields before
		// finding trailing content.
		return nil, nil, err
	}
	return params, records, nil
}

// looksLikeHTML reports whether data starts (after white space) like an
// HTML page rather than an XML document.
func looksLikeHTML(data []byte) bool {
	head := bytes.TrimLeft(data, " \t\r\n\ufeff")
	hasPrefixFold := func(prefix string) bool {
		return len(head) >= len(prefix) && bytes.EqualFold(head[:len(prefix)], []byte(prefix))
	}
	return hasPrefixFold("<!doctype html") || hasPrefixFold("<html")
}

// flatParser walks the token stream of one document.
type flatParser struct {
	d *xml.Decoder
}

func (p *flatParser) token() (xml.Token, error) {
	tok, err := p.d.Token()
	if err == io.EOF {
		return nil, &XMLError{Reason: "truncated document"}
	}
	if err != nil {
		var syntax *xml.SyntaxError
		if errors.As(err, &syntax) && strings.Contains(syntax.Msg, "unexpected EOF") {
			return nil, &XMLError{Reason: "truncated document", Err: err}
		}
		return nil, &XMLError{Reason: "syntax error", Err: err}
	}
	return tok, nil
}

func (p *flatParser) document(container, item string) (Params, []Params, error) {
	// Prolog: declaration, comments and white space only.
	for {
		tok, err := p.token()
		if err != nil {
			if xe := (*XMLError)(nil); errors.As(err, &xe) && xe.Reason == "truncated document" && xe.Err == nil {
				return nil, nil, &XMLError{Reason: "empty document"}
			}
			return nil, nil, err
		}
		switch t := tok.(type) {
		case xml.ProcInst, xml.Comment:
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return nil, nil, &XMLError{Reason: "text before the root element"}
			}
		case xml.Directive:
			if bytes.Contains(bytes.ToLower(t), []byte("html")) {
				return nil, nil, &XMLError{Reason: "an HTML page", HTML: true}
			}
			return nil, nil, &XMLError{Reason: "unexpected directive"}
		case xml.StartElement:
			switch {
			case strings.EqualFold(t.Name.Local, "html"):
				return nil, nil, &XMLError{Reason: "an HTML page", HTML: true}
			case t.Name.Local != "xml" || t.Name.Space != "":
				return nil, nil, &XMLError{Reason: fmt.Sprintf("root element <%s>, want <xml>", t.Name.Local)}
			}
			params, records, err := p.root(container, item)
			if err != nil {
				return nil, nil, err
			}
			return params, records, p.epilog()
		default:
			return nil, nil, &XMLError{Reason: "unexpected token before the root element"}
		}
	}
}

func (p *flatParser) epilog() error {
	for {
		tok, err := p.d.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return &XMLError{Reason: "trailing content", Err: err}
		}
		switch t := tok.(type) {
		case xml.ProcInst, xml.Comment:
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return &XMLError{Reason: "trailing content"}
			}
		default:
			return &XMLError{Reason: "trailing content"}
		}
	}
}

// root reads the children of <xml> up to its end tag.
func (p *flatParser) root(container, item string) (Params, []Params, error) {
	params := make(Params, 16)
	var records []Params
	seenContainer := false
	for {
		tok, err := p.token()
		if err != nil {
			return nil, nil, err
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return params, records, nil
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return nil, nil, &XMLError{Reason: "text directly inside <xml>"}
			}
		case xml.Comment, xml.ProcInst:
		case xml.StartElement:
			name, err := fieldName(t)
			if err != nil {
				return nil, nil, err
			}
			if container != "" && name == container {
				if seenContainer {
					return nil, nil, &XMLError{Reason: fmt.Sprintf("repeated element <%s>", name)}
				}
				seenContainer = true
				if records, err = p.records(item); err != nil {
					return nil, nil, err
				}
				continue
			}
			if _, dup := params[name]; dup {
				return nil, nil, &XMLError{Reason: fmt.Sprintf("repeated element <%s>", name)}
			}
			value, err := p.text(name)
			if err != nil {
				return nil, nil, err
			}
			params[name] = value
		default:
			return nil, nil, &XMLError{Reason: "unexpected token inside <xml>"}
		}
	}
}

// records reads repeated flat <item> records up to the container's end tag.
func (p *flatParser) records(item string) ([]Params, error) {
	records := []Params{}
	for {
		tok, err := p.token()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return records, nil
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return nil, &XMLError{Reason: "text directly inside a record list"}
			}
		case xml.Comment:
		case xml.StartElement:
			if t.Name.Local != item || t.Name.Space != "" {
				return nil, &XMLError{Reason: fmt.Sprintf("unexpected element <%s> in a record list", qualifiedName(t.Name))}
			}
			record, err := p.record()
			if err != nil {
				return nil, err
			}
			records = append(records, record)
		default:
			return nil, &XMLError{Reason: "unexpected token in a record list"}
		}
	}
}

// record reads one flat record's fields up to its end tag.
func (p *flatParser) record() (Params, error) {
	record := make(Params, 4)
	for {
		tok, err := p.token()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return record, nil
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return nil, &XMLError{Reason: "text directly inside a record"}
			}
		case xml.Comment:
		case xml.StartElement:
			name, err := fieldName(t)
			if err != nil {
				return nil, err
			}
			if _, dup := record[name]; dup {
				return nil, &XMLError{Reason: fmt.Sprintf("repeated element <%s> in a record", name)}
			}
			value, err := p.text(name)
			if err != nil {
				return nil, err
			}
			record[name] = value
		default:
			return nil, &XMLError{Reason: "unexpected token in a record"}
		}
	}
}

// fieldName returns the name of a field element. APIv2 field names are
// plain names without a namespace, the names EncodeXML can write: the
// decoder would otherwise strip a prefix (<p:return_code> read as
// return_code) and accept documents that cannot be encoded back.
func fieldName(t xml.StartElement) (string, error) {
	if t.Name.Space != "" || !validName(t.Name.Local) {
		return "", &XMLError{Reason: fmt.Sprintf("element <%s> is not a plain field name", qualifiedName(t.Name))}
	}
	return t.Name.Local, nil
}

// qualifiedName spells an element name for an error message.
func qualifiedName(n xml.Name) string {
	if n.Space == "" {
		return n.Local
	}
	return n.Space + ":" + n.Local
}

// text reads the character data of a leaf element up to its end tag.
func (p *flatParser) text(name string) (string, error) {
	var value []byte
	for {
		tok, err := p.token()
		if err != nil {
			return "", err
		}
		switch t := tok.(type) {
		case xml.CharData:
			value = append(value, t...)
		case xml.Comment:
		case xml.EndElement:
			return string(value), nil
		case xml.StartElement:
			return "", &XMLError{Reason: fmt.Sprintf("nested element <%s> inside <%s>", t.Name.Local, name)}
		default:
			return "", &XMLError{Reason: fmt.Sprintf("unexpected token inside <%s>", name)}
		}
	}
}
