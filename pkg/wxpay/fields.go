package wxpay

// Fields returns the request's fields as the client signs them for
// merchant mchID, without nonce_str (new on every try) and sign, and
// without the empty ones (never sent). Two requests with equal Fields are
// the same red packet to WeChat; a ledger keys its records on them.
func (r *SendGroupRequest) Fields(mchID string) map[string]string { return signedFields(r, mchID) }

// Fields returns the request's signed fields; see SendGroupRequest.Fields.
func (r *SendMiniRequest) Fields(mchID string) map[string]string { return signedFields(r, mchID) }

// Fields returns the request's signed fields; see SendGroupRequest.Fields.
func (r *SendRequest) Fields(mchID string) map[string]string { return signedFields(r, mchID) }

func signedFields(r request, mchID string) map[string]string {
	var buf [maxFields]field
	fields := r.appendFields(buf[:0], mchID, "")
	m := make(map[string]string, len(fields))
	for _, f := range fields {
		if f.value != "" {
			m[f.name] = f.value
		}
	}
	return m
}
