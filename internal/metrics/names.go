package metrics

// Namespace is the CloudWatch namespace of the functions' metrics.
const Namespace = "WxRedpack"

// The functions' metrics. The template's alarms and dashboard name them:
// a rename is a change of the stack's contract.
const (
	// Sends counts the send requests a send function answered, one per
	// request, by Function, Api and Outcome (success, failed, unknown),
	// and by Function alone. Replays and invalid requests (INVALID_REQUEST)
	// are not counted; the send path's own refusals (BILLNO_CONFLICT,
	// IN_PROGRESS, LEDGER_UNAVAILABLE) and CONFIG_ERROR are, as failed.
	Sends = "Sends"
	// Replays counts the repeats answered from the ledger, by Function.
	Replays = "Replays"
	// Conflicts counts the requests refused BILLNO_CONFLICT, by Function.
	Conflicts = "Conflicts"
	// Unknowns counts the sends whose outcome is unknown, by Function.
	Unknowns = "Unknowns"
	// Transitions counts the reconciler's moves of items, by From and To
	// (ledger states).
	Transitions = "Transitions"
	// NeedsAttention counts the items the reconciler moved to
	// NEEDS_ATTENTION; no dimensions.
	NeedsAttention = "NeedsAttention"
	// UnknownOverOneHour is a gauge of every reconciler pass: how many of
	// the items the pass read were UNKNOWN, or RECORDED with their lease
	// ended, more than an hour after their first try; no dimensions.
	UnknownOverOneHour = "UnknownOverOneHour"
	// OldestUnsettledAgeSeconds is a gauge of every reconciler pass: the
	// age (seconds since its first try) of the oldest item not final
	// among those the pass read; no dimensions.
	OldestUnsettledAgeSeconds = "OldestUnsettledAgeSeconds"
	// CampaignSends counts the sends of campaign rows; no dimensions.
	CampaignSends = "CampaignSends"
	// CampaignPaused counts the campaigns paused because WeChat refused
	// the merchant (NOTENOUGH, ...); no dimensions. Its alarm asks for a
	// top-up or a fix, then a resume.
	CampaignPaused = "CampaignPaused"
	// CampaignFreqLimits counts the FREQ_LIMIT refusals of campaign
	// sends, each of which slowed its campaign; no dimensions.
	CampaignFreqLimits = "CampaignFreqLimits"
)

// The dimensions of the functions' metrics.
const (
	// DimFunction is the function's name: sendgroup, sendmini, send.
	DimFunction = "Function"
	// DimAPI is WeChat's API: sendgroupredpack, sendminiprogramhb,
	// sendredpack.
	DimAPI = "Api"
	// DimOutcome is the answer's outcome: success, failed or unknown.
	DimOutcome = "Outcome"
	// DimFrom and DimTo are the ledger states of a reconciler's move.
	DimFrom = "From"
	DimTo   = "To"
)
