package wxpay

import (
	"strings"
	"unicode/utf8"
)

// fastDecode reads the documents WeChat Pay actually sends (a bare <xml>
// root whose leaves hold plain text or CDATA, optionally one record list)
// without encoding/xml's token machinery, which costs more than the rest of
// a call. It accepts only a strict subset of XML and reports ok=false for
// anything else (a declaration, comments, entities, carriage returns,
// attributes, unusual names, duplicates, errors), which decodeXML then
// reads, or refuses, with encoding/xml. When ok is true the result is what
// the encoding/xml path yields; FuzzFastDecodeMatchesSlow checks that.
//
// It is the one hand-written codec left, kept on a measured figure: without
// it a warm invocation, measured at the process boundary, is 4-6% slower
// (BENCHMARKS.md, "The XML decoder").
func fastDecode(data []byte, container, item string) (params Params, records []Params, ok bool) {
	// One copy of the document: names and values are substrings of it, so
	// a field costs no allocation of its own.
	s := fastScanner{data: string(data)}
	s.space()
	if !s.literal("<xml>") {
		return nil, nil, false
	}
	// The fields are gathered first, so that the map is made at its final
	// size: growing it would cost more than reading the document.
	var buf [32]field
	fields := buf[:0]
	for {
		s.space()
		if s.literal("</xml>") {
			s.space()
			if s.pos != len(s.data) {
				return nil, nil, false
			}
			params = make(Params, len(fields))
			for _, f := range fields {
				params[f.name] = f.value
			}
			if len(params) != len(fields) {
				return nil, nil, false // a repeated name
			}
			return params, records, true
		}
		name, ok := s.openTag()
		if !ok {
			return nil, nil, false
		}
		if container != "" && name == container {
			if records != nil {
				return nil, nil, false
			}
			if records, ok = s.records(container, item); !ok {
				return nil, nil, false
			}
			continue
		}
		value, ok := s.leaf(name)
		if !ok {
			return nil, nil, false
		}
		fields = append(fields, field{name, value})
	}
}

// fastScanner is a cursor over a document.
type fastScanner struct {
	data string
	pos  int
}

// space skips XML white space.
func (s *fastScanner) space() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n':
			s.pos++
		default:
			return
		}
	}
}

// literal consumes lit if the input continues with it.
func (s *fastScanner) literal(lit string) bool {
	if strings.HasPrefix(s.data[s.pos:], lit) {
		s.pos += len(lit)
		return true
	}
	return false
}

// openTag consumes <name> with a plain name (as validName allows) and
// returns the name.
func (s *fastScanner) openTag() (string, bool) {
	if s.pos >= len(s.data) || s.data[s.pos] != '<' {
		return "", false
	}
	end := strings.IndexByte(s.data[s.pos:], '>')
	if end < 0 {
		return "", false
	}
	name := s.data[s.pos+1 : s.pos+end]
	if !validName(name) {
		return "", false
	}
	s.pos += end + 1
	return name, true
}

// closeTag consumes </name>.
func (s *fastScanner) closeTag(name string) bool {
	rest := s.data[s.pos:]
	if len(rest) < len(name)+3 || rest[0] != '<' || rest[1] != '/' || rest[2:2+len(name)] != name || rest[2+len(name)] != '>' {
		return false
	}
	s.pos += len(name) + 3
	return true
}

// leaf reads a leaf's text and CDATA sections up to </name>.
func (s *fastScanner) leaf(name string) (string, bool) {
	var value string
	var joined []byte // only used when the value has more than one piece
	pieces := 0
	add := func(text string) {
		switch pieces++; pieces {
		case 1:
			value = text
		case 2:
			joined = append(append(joined, value...), text...)
		default:
			joined = append(joined, text...)
		}
	}
	for {
		text, ok := s.text()
		if !ok {
			return "", false
		}
		if text != "" {
			add(text)
		}
		if s.literal("<![CDATA[") {
			if text, ok = s.cdata(); !ok {
				return "", false
			}
			add(text)
			continue
		}
		if !s.closeTag(name) {
			return "", false
		}
		if pieces > 1 {
			value = string(joined)
		}
		return value, true
	}
}

// records reads <item> records up to </container>.
func (s *fastScanner) records(container, item string) ([]Params, bool) {
	records := []Params{}
	for {
		s.space()
		if s.closeTag(container) {
			return records, true
		}
		if !s.literal("<") || !s.literal(item) || !s.literal(">") {
			return nil, false
		}
		record := make(Params, 4)
		for {
			s.space()
			if s.closeTag(item) {
				break
			}
			name, ok := s.openTag()
			if !ok {
				return nil, false
			}
			value, ok := s.leaf(name)
			if !ok {
				return nil, false
			}
			// A map that does not grow already held the name: one hash
			// instead of a lookup before the insert.
			n := len(record)
			if record[name] = value; len(record) == n {
				return nil, false
			}
		}
		records = append(records, record)
	}
}

// Each piece of character data is checked in the pass that finds its end.

// text consumes character data up to the next '<' and returns it. It
// refuses text that needs an XML parser: markup or an entity, a carriage
// return (parsers normalise it), any '>' (so also "]]>"), and characters
// XML does not allow.
func (s *fastScanner) text() (string, bool) {
	start := s.pos
	for s.pos < len(s.data) {
		switch c := s.data[s.pos]; {
		case c == '<':
			return s.data[start:s.pos], true
		case c == '&', c == '>':
			return "", false
		case ' ' <= c && c < utf8.RuneSelf, c == '\t', c == '\n':
			s.pos++
		default:
			if !s.nonASCII() {
				return "", false
			}
		}
	}
	return "", false
}

// cdata consumes the content of a CDATA section and its "]]>", and returns
// the content, which is taken verbatim. It refuses a carriage return and
// characters XML does not allow.
func (s *fastScanner) cdata() (string, bool) {
	start := s.pos
	for s.pos < len(s.data) {
		switch c := s.data[s.pos]; {
		case c == ']' && strings.HasPrefix(s.data[s.pos:], "]]>"):
			text := s.data[start:s.pos]
			s.pos += len("]]>")
			return text, true
		case ' ' <= c && c < utf8.RuneSelf, c == '\t', c == '\n':
			s.pos++
		default:
			if !s.nonASCII() {
				return "", false
			}
		}
	}
	return "", false
}

// nonASCII consumes the character at s.pos, which is not printable ASCII,
// if it is valid UTF-8 and XML allows it. ASCII control characters (other
// than the tab and line feed the callers take) are refused.
func (s *fastScanner) nonASCII() bool {
	r, size := utf8.DecodeRuneInString(s.data[s.pos:])
	if r < utf8.RuneSelf || r == utf8.RuneError && size == 1 || r == 0xFFFE || r == 0xFFFF {
		return false
	}
	s.pos += size
	return true
}
