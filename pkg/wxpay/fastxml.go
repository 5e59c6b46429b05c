package wxpay

import (
	"bytes"
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
func fastDecode(data []byte, container, item string) (params Params, records []Params, ok bool) {
	s := fastScanner{data: data}
	s.space()
	if !s.literal("<xml>") {
		return nil, nil, false
	}
	params = make(Params, 16)
	for {
		s.space()
		if s.literal("</xml>") {
			s.space()
			return params, records, s.pos == len(s.data)
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
		if _, dup := params[name]; dup {
			return nil, nil, false
		}
		value, ok := s.leaf(name)
		if !ok {
			return nil, nil, false
		}
		params[name] = value
	}
}

// fastScanner is a cursor over a document.
type fastScanner struct {
	data []byte
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
	if bytes.HasPrefix(s.data[s.pos:], []byte(lit)) {
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
	end := bytes.IndexByte(s.data[s.pos:], '>')
	if end < 0 {
		return "", false
	}
	raw := s.data[s.pos+1 : s.pos+end]
	name, known := knownNames[string(raw)] // no allocation for the lookup
	if !known {
		name = string(raw)
		if !validName(name) {
			return "", false
		}
	}
	s.pos += end + 1
	return name, true
}

// closeTag consumes </name>.
func (s *fastScanner) closeTag(name string) bool {
	rest := s.data[s.pos:]
	if len(rest) < len(name)+3 || rest[0] != '<' || rest[1] != '/' || string(rest[2:2+len(name)]) != name || rest[2+len(name)] != '>' {
		return false
	}
	s.pos += len(name) + 3
	return true
}

// leaf reads a leaf's text and CDATA sections up to </name>.
func (s *fastScanner) leaf(name string) (string, bool) {
	var value []byte // only used when the value has more than one piece
	pieces := 0
	var single []byte
	for {
		lt := bytes.IndexByte(s.data[s.pos:], '<')
		if lt < 0 {
			return "", false
		}
		if lt > 0 {
			text := s.data[s.pos : s.pos+lt]
			if !plainText(text) {
				return "", false
			}
			single, value, pieces = text, append(value, text...), pieces+1
			s.pos += lt
		}
		if s.literal("<![CDATA[") {
			end := bytes.Index(s.data[s.pos:], []byte("]]>"))
			if end < 0 {
				return "", false
			}
			text := s.data[s.pos : s.pos+end]
			if !cdataText(text) {
				return "", false
			}
			single, value, pieces = text, append(value, text...), pieces+1
			s.pos += end + len("]]>")
			continue
		}
		if !s.closeTag(name) {
			return "", false
		}
		switch pieces {
		case 0:
			return "", true
		case 1:
			return string(single), true
		}
		return string(value), true
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
		if !s.literal("<" + item + ">") {
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
			if _, dup := record[name]; dup {
				return nil, false
			}
			value, ok := s.leaf(name)
			if !ok {
				return nil, false
			}
			record[name] = value
		}
		records = append(records, record)
	}
}

// plainText reports whether text outside CDATA needs nothing from an XML
// parser: no markup or entity, no carriage return (parsers normalise it),
// no "]]>", and only characters XML allows.
func plainText(text []byte) bool {
	for _, c := range text {
		if c == '&' || c == '\r' || c == '>' {
			return false
		}
	}
	return xmlChars(text)
}

// cdataText reports whether a CDATA section's content is taken verbatim:
// no carriage return, only characters XML allows.
func cdataText(text []byte) bool {
	return bytes.IndexByte(text, '\r') < 0 && xmlChars(text)
}

// xmlChars reports whether text is UTF-8 made of characters XML allows.
func xmlChars(text []byte) bool {
	for i := 0; i < len(text); {
		c := text[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\t' && c != '\n' {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(text[i:])
		if r == utf8.RuneError && size == 1 || r == 0xFFFE || r == 0xFFFF {
			return false
		}
		i += size
	}
	return true
}

// knownNames holds the field names WeChat's red packet answers use, so
// that reading them allocates no new strings.
var knownNames = func() map[string]string {
	names := []string{
		"return_code", "return_msg", "result_code", "err_code", "err_code_des",
		"mch_billno", "mch_id", "wxappid", "appid", "re_openid", "total_amount",
		"total_num", "send_listid", "package", "sign", "sign_type", "nonce_str",
		"detail_id", "status", "send_type", "hb_type", "reason", "send_time",
		"refund_time", "refund_amount", "wishing", "remark", "act_name",
		"hblist", "hbinfo", "openid", "amount", "rcv_time", "xml",
		"send_name", "amt_type", "scene_id", "risk_info", "notify_way",
		"client_ip", "msgappid", "sub_mch_id", "consume_mch_id", "bill_type",
	}
	m := make(map[string]string, len(names))
	for _, n := range names {
		m[n] = n
	}
	return m
}()
