package campaign

import (
	"strings"
	"testing"
)

// testSettings are valid settings.
func testSettings() Settings {
	return Settings{WxAppID: "wx8888888888888888", SendName: "Shop", ActName: "Spring", Wishing: "Thank you",
		Remark: "Have fun", ClientIP: "10.0.0.1"}
}

const testMchID = "1900000109"

func TestCheckValid(t *testing.T) {
	csvFile := "re_openid,total_amount\noUser1,100\noUser2,250\n"
	tests := []struct {
		name, file string
	}{
		{"csv", csvFile},
		{"csv with CRLF and a byte order mark", "\xef\xbb\xbfre_openid,total_amount\r\noUser1,100\r\noUser2,250\r\n"},
		{"csv with columns in another order", "total_amount,re_openid\n100,oUser1\n250,oUser2\n"},
		{"jsonl", `{"re_openid":"oUser1","total_amount":100}` + "\n" + `{"total_amount":250,"re_openid":"oUser2"}` + "\n\n"},
		{"jsonl without a final newline", `{"re_openid":"oUser1","total_amount":100}` + "\n" + `{"re_openid":"oUser2","total_amount":250}`},
	}
	want, err := Check(strings.NewReader(csvFile), testSettings(), testMchID)
	if err != nil || len(want.Errors) > 0 {
		t.Fatalf("Check: %+v, %v", want, err)
	}
	if want.Rows != 2 || want.Amount != 350 || len(want.ID) != 20 || want.ID != want.Identity[:20] {
		t.Fatalf("Check = %+v", want)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Check(strings.NewReader(tt.file), testSettings(), testMchID)
			if err != nil || len(got.Errors) > 0 {
				t.Fatalf("Check: %+v, %v", got, err)
			}
			if got.Identity != want.Identity || got.Rows != 2 || got.Amount != 350 {
				t.Errorf("Check = %+v, want the identity and totals of the plain CSV %+v", got, want)
			}
		})
	}
}

// TestCheckIdentity: what makes another campaign, and what does not.
func TestCheckIdentity(t *testing.T) {
	file := "re_openid,total_amount\noUser1,100\n"
	base, _ := Check(strings.NewReader(file), testSettings(), testMchID)
	tests := []struct {
		name   string
		file   string
		change func(*Settings)
		mchID  string
		same   bool
	}{
		{name: "another rate", change: func(s *Settings) { s.Rate = 5 }, same: true},
		{name: "another act_name", change: func(s *Settings) { s.ActName = "Summer" }},
		{name: "another wishing", change: func(s *Settings) { s.Wishing = "Thanks" }},
		{name: "another merchant", mchID: "1900000110"},
		{name: "another amount", file: "re_openid,total_amount\noUser1,101\n"},
		{name: "a row's own wishing", file: "re_openid,total_amount,wishing\noUser1,100,Hi\n"},
		{name: "a given billno", file: "re_openid,total_amount,mch_billno\noUser1,100,B1\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, f, mch := testSettings(), file, testMchID
			if tt.change != nil {
				tt.change(&s)
			}
			if tt.file != "" {
				f = tt.file
			}
			if tt.mchID != "" {
				mch = tt.mchID
			}
			got, err := Check(strings.NewReader(f), s, mch)
			if err != nil || len(got.Errors) > 0 {
				t.Fatalf("Check: %+v, %v", got, err)
			}
			if (got.Identity == base.Identity) != tt.same {
				t.Errorf("same identity = %v, want %v", got.Identity == base.Identity, tt.same)
			}
		})
	}
	named := testSettings()
	named.CampaignID = "spring-2027"
	got, _ := Check(strings.NewReader(file), named, testMchID)
	if got.ID != "spring-2027" || got.Identity != base.Identity {
		t.Errorf("named campaign: ID %q, identity equal %v; want spring-2027 and the same identity", got.ID, got.Identity == base.Identity)
	}
}

func TestCheckInvalid(t *testing.T) {
	tests := []struct {
		name     string
		file     string
		settings func(*Settings)
		want     []RowError
	}{
		{name: "empty file", file: "", want: []RowError{{Message: "the file has no rows"}}},
		{name: "header only", file: "re_openid,total_amount\n", want: []RowError{{Message: "the file has no rows"}}},
		{name: "unknown column", file: "re_openid,total_amount,amount\noUser1,100,1\n",
			want: []RowError{{Field: "amount", Message: "header: unknown column (known: mch_billno, re_openid, total_amount, wishing, remark, scene_id)"}}},
		{name: "missing column", file: "re_openid\noUser1\n", want: []RowError{{Field: "total_amount", Message: "header: required column missing"}}},
		{name: "column twice", file: "re_openid,total_amount,re_openid\no,1,o\n", want: []RowError{{Field: "re_openid", Message: "header: column given twice"}}},
		{name: "one bad amount among good rows", file: "re_openid,total_amount\noUser1,100\noUser2,1.5\noUser3,100\n",
			want: []RowError{{Row: 2, Field: "total_amount", Message: `must be a whole number of fen, got "1.5"`}}},
		{name: "signed amount", file: "re_openid,total_amount\noUser1,+100\n",
			want: []RowError{{Row: 1, Field: "total_amount", Message: `must be a whole number of fen, got "+100"`}}},
		{name: "zero amount", file: "re_openid,total_amount\noUser1,0\n",
			want: []RowError{{Row: 1, Field: "total_amount", Message: "must be a positive whole number of fen"}}},
		{name: "amount that needs a scene_id", file: "re_openid,total_amount\noUser1,30000\n",
			want: []RowError{{Row: 1, Field: "scene_id", Message: "is required when total_amount is below 100 or above 20000 fen"}}},
		{name: "empty openid and a bad billno", file: "re_openid,total_amount,mch_billno\n,100,B1\noUser2,100,B-2\n",
			want: []RowError{{Row: 1, Field: "re_openid", Message: "is required"}, {Row: 2, Field: "mch_billno", Message: "may hold only letters and digits"}}},
		{name: "a billno twice", file: "re_openid,total_amount,mch_billno\noUser1,100,B1\noUser2,100,B1\n",
			want: []RowError{{Row: 2, Field: "mch_billno", Message: "is also row 1's: one billno pays once"}}},
		{name: "too few fields", file: "re_openid,total_amount\noUser1\n",
			want: []RowError{{Row: 1, Message: "wrong number of fields"}}},
		{name: "jsonl unknown member", file: `{"re_openid":"o","total_amount":100,"amount":1}`,
			want: []RowError{{Row: 1, Field: "amount", Message: "unknown object member name"}}},
		{name: "jsonl amount as a string", file: `{"re_openid":"o","total_amount":"100"}`,
			want: []RowError{{Row: 1, Field: "total_amount", Message: "has the wrong type: string"}}},
		{name: "jsonl not an object", file: `{"re_openid":"o","total_amount":100}` + "\n[1]\n",
			want: []RowError{{Row: 2, Message: "has the wrong type: array"}}},
		{name: "settings without send_name", file: "re_openid,total_amount\noUser1,100\n", settings: func(s *Settings) { s.SendName = "" },
			want: []RowError{{Field: "send_name", Message: "settings: is required"}}},
		{name: "settings with a bad campaign_id", file: "re_openid,total_amount\noUser1,100\n", settings: func(s *Settings) { s.CampaignID = "a b" },
			want: []RowError{{Field: "campaign_id", Message: "settings: must be 1 to 64 of A-Z, a-z, 0-9, _ and -"}}},
		{name: "settings with a negative rate", file: "re_openid,total_amount\noUser1,100\n", settings: func(s *Settings) { s.Rate = -1 },
			want: []RowError{{Field: "rate", Message: "settings: must be a positive number of sends per second"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testSettings()
			if tt.settings != nil {
				tt.settings(&s)
			}
			got, err := Check(strings.NewReader(tt.file), s, testMchID)
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Errors) != len(tt.want) {
				t.Fatalf("Errors = %+v, want %+v", got.Errors, tt.want)
			}
			for i, w := range tt.want {
				if g := got.Errors[i]; g.Row != w.Row || g.Field != w.Field || !strings.Contains(g.Message, w.Message) {
					t.Errorf("Errors[%d] = %+v, want %+v", i, g, w)
				}
			}
		})
	}
}

func TestBillno(t *testing.T) {
	a := Billno(testMchID, "spring", 1)
	if len(a) != 28 || a != Billno(testMchID, "spring", 1) {
		t.Fatalf("Billno = %q (%d characters), want 28, the same every time", a, len(a))
	}
	for _, other := range []string{Billno(testMchID, "spring", 2), Billno(testMchID, "summer", 1), Billno("1900000110", "spring", 1)} {
		if other == a {
			t.Errorf("Billno %q repeats for another row, campaign or merchant", a)
		}
	}
	if !strings.HasSuffix(a, "0000000001") {
		t.Errorf("Billno = %q, want the row number in its last 10 digits", a)
	}
}

func TestParseSettings(t *testing.T) {
	s, err := ParseSettings([]byte(`{"wxappid":"wx1","send_name":"S","act_name":"A","wishing":"W","remark":"R","client_ip":"10.0.0.1","rate":5,"campaign_id":"c1"}`))
	if err != nil || s.Rate != 5 || s.CampaignID != "c1" || s.WxAppID != "wx1" {
		t.Fatalf("ParseSettings = %+v, %v", s, err)
	}
	for _, bad := range []string{`{"wxappid":"wx1","sendname":"S"}`, `{"wxappid":"wx1","wxappid":"wx2"}`, `[]`, `{"rate":"5"}`} {
		if _, err := ParseSettings([]byte(bad)); err == nil {
			t.Errorf("ParseSettings(%s) = nil error, want a refusal", bad)
		}
	}
}
