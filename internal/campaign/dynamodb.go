package campaign

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// The table's key: HASH id (S). A campaign's item has its campaign id; a
// merchant's pacing item (the Window) has PacePrefix and the mch_id.
// Campaign ids are 1 to 64 of [A-Za-z0-9_-], so no campaign id has the
// prefix and the two kinds of item cannot meet.
const (
	HashKey    = "id"
	PacePrefix = "pace#"
)

// Attribute names used in conditions, updates and the List filter; the
// others are in storedCampaign's tags.
const (
	attrVersion   = "version"
	attrState     = "state"
	attrReportDue = "report_due"
	attrSettings  = "settings"
	attrOutcomes  = "outcomes"
	attrPaceSec   = "sec"
	attrPaceN     = "n"
)

// storeTimeLayout is how times are stored, as in the ledger: UTC to the
// millisecond, fixed width, so that comparing the strings compares the
// times.
const storeTimeLayout = "2006-01-02T15:04:05.000Z"

// DynamoDBAPI is the part of *dynamodb.Client the DynamoDB store and
// window use.
type DynamoDBAPI interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	Scan(ctx context.Context, in *dynamodb.ScanInput, optFns ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
}

// DynamoDB is a Store and a Window in one DynamoDB table (TableInput):
// an item per campaign, and an item per merchant for the window.
//
// Store: Create is a PutItem on the condition that no item has the id;
// Put a PutItem on the condition that the stored version is the one the
// campaign was read at; Get a strongly consistent GetItem; List a Scan.
// The table holds only campaigns, which are few and small, and one pacing
// item per merchant, so a Scan of it stays small.
//
// Window: each Take or Count is one to three conditional UpdateItems of
// the merchant's pacing item, which holds the second counted (sec, unix
// seconds) and its count (n).
//
// A DynamoDB error other than a failed condition is returned wrapped:
// the caller decides (an API send whose Count fails is logged, never
// held back).
type DynamoDB struct {
	client DynamoDBAPI
	table  string
}

// NewDynamoDB returns a store and window over the table.
func NewDynamoDB(client DynamoDBAPI, table string) *DynamoDB {
	return &DynamoDB{client: client, table: table}
}

// TableInput returns the CreateTable request of a campaign table: the key
// HASH id (a string), billed per request, no index and no TTL. Tests and
// local runs create it; deployed tables come from the template, which
// declares the same.
func TableInput(name string) *dynamodb.CreateTableInput {
	return &dynamodb.CreateTableInput{
		TableName: aws.String(name),
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(HashKey), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(HashKey), KeyType: types.KeyTypeHash},
		},
		BillingMode: types.BillingModePayPerRequest,
	}
}

// Create implements Store.
func (d *DynamoDB) Create(ctx context.Context, c *Campaign) error {
	if err := checkStoredID("create", c.ID); err != nil {
		return err
	}
	av, err := encodeCampaign(c, 1)
	if err != nil {
		return fmt.Errorf("campaign: create %s: %w", c.ID, err)
	}
	// A campaign is created once: a second Create must not replace it.
	cond := expression.Name(HashKey).AttributeNotExists()
	if err := d.putIf(ctx, av, cond); err != nil {
		return campaignWriteError("create", c.ID, err, ErrExists)
	}
	c.Version = 1
	return nil
}

// putIf writes item av on condition cond: one conditional PutItem.
func (d *DynamoDB) putIf(ctx context.Context, av map[string]types.AttributeValue, cond expression.ConditionBuilder) error {
	expr, err := expression.NewBuilder().WithCondition(cond).Build()
	if err != nil {
		return err
	}
	_, err = d.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                 aws.String(d.table),
		Item:                      av,
		ConditionExpression:       expr.Condition(),
		ExpressionAttributeNames:  expr.Names(),
		ExpressionAttributeValues: expr.Values(),
	})
	return err
}

// Get implements Store. An id that is not a campaign id (a pacing item's)
// is ErrNotFound: no campaign can have it.
func (d *DynamoDB) Get(ctx context.Context, id string) (*Campaign, error) {
	if err := checkStoredID("get", id); err != nil {
		return nil, fmt.Errorf("%w: %w", err, ErrNotFound)
	}
	out, err := d.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(d.table),
		Key:       map[string]types.AttributeValue{HashKey: &types.AttributeValueMemberS{Value: id}},
		// A runner reads the campaign to Put it: it must see the last
		// write, or every Put it makes fails on the version.
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, fmt.Errorf("campaign: get %s: %w", id, err)
	}
	if len(out.Item) == 0 {
		return nil, fmt.Errorf("campaign: get %s: %w", id, ErrNotFound)
	}
	c, err := decodeCampaign(out.Item)
	if err != nil {
		return nil, fmt.Errorf("campaign: get %s: %w", id, err)
	}
	return c, nil
}

// Put implements Store. A Put of a campaign never created fails with
// ErrVersion: the condition finds no version to match.
func (d *DynamoDB) Put(ctx context.Context, c *Campaign) error {
	if err := checkStoredID("put", c.ID); err != nil {
		return err
	}
	next := c.Version + 1
	av, err := encodeCampaign(c, next)
	if err != nil {
		return fmt.Errorf("campaign: put %s: %w", c.ID, err)
	}
	// Only over the version read: a write since then wins, and this one
	// is refused rather than undoing it.
	cond := expression.Name(attrVersion).Equal(expression.Value(c.Version))
	if err := d.putIf(ctx, av, cond); err != nil {
		return campaignWriteError("put", c.ID+" at version "+strconv.FormatInt(c.Version, 10), err, ErrVersion)
	}
	c.Version = next
	return nil
}

// List implements Store: a Scan, all its pages, filtered to the campaigns
// a runner has work in, sorted by CreatedAt, then ID. Pacing items have no
// state and no report_due, so the filter leaves them out.
func (d *DynamoDB) List(ctx context.Context) ([]*Campaign, error) {
	filter := expression.Name(attrState).In(expression.Value(Planning), expression.Value(Running), expression.Value(Paused)).
		Or(expression.Name(attrReportDue).Equal(expression.Value(true)))
	expr, err := expression.NewBuilder().WithFilter(filter).Build()
	if err != nil {
		return nil, fmt.Errorf("campaign: list: %w", err)
	}
	p := dynamodb.NewScanPaginator(d.client, &dynamodb.ScanInput{
		TableName:                 aws.String(d.table),
		FilterExpression:          expr.Filter(),
		ExpressionAttributeNames:  expr.Names(),
		ExpressionAttributeValues: expr.Values(),
		// A campaign just created or resumed is listed by the next run.
		ConsistentRead: aws.Bool(true),
	})
	var out []*Campaign
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("campaign: list: %w", err)
		}
		for _, item := range page.Items {
			c, err := decodeCampaign(item)
			if err != nil {
				return nil, fmt.Errorf("campaign: list: %w", err)
			}
			out = append(out, c)
		}
	}
	sortCampaigns(out)
	return out, nil
}

// Take implements Window, in at most three conditional UpdateItems of the
// merchant's pacing item:
//
//  1. count in the second if it is the stored one and has room
//     (sec = :s AND n < :max);
//  2. else start the second with this send, if the stored second is
//     older or there is none (attribute_not_exists(sec) OR sec < :s);
//  3. else step 1 once more.
//
// Each step is atomic, and each counts a send only in a second that has
// room (1, 3) or in a new second with this send alone (2, max >= 1), so
// concurrent Takes never admit more than max in a second. A Take refuses
// only when step 3 fails: step 2 failed, so the stored second was at
// least ours; step 3 failing then means our second is full or already
// past (a newer second is stored, whose sends are counted there: a late
// Take must not add to them). Step 3 covers the race where another Take
// started our second between steps 1 and 2.
func (d *DynamoDB) Take(ctx context.Context, mchID string, now time.Time, max int) (bool, error) {
	if max <= 0 {
		return false, nil
	}
	sec := now.Unix()
	inSecond := expression.Name(attrPaceSec).Equal(expression.Value(sec)).
		And(expression.Name(attrPaceN).LessThan(expression.Value(max)))
	add := expression.Set(expression.Name(attrPaceN), expression.Name(attrPaceN).Plus(expression.Value(1)))

	ok, err := d.pace(ctx, "take", mchID, inSecond, add)
	if ok || err != nil {
		return ok, err
	}
	if ok, err = d.pace(ctx, "take", mchID, newerSecond(sec), resetSecond(sec)); ok || err != nil {
		return ok, err
	}
	return d.pace(ctx, "take", mchID, inSecond, add)
}

// Count implements Window, in at most three conditional UpdateItems of
// the merchant's pacing item:
//
//  1. add the send to the stored second if it is ours or newer
//     (sec >= :s);
//  2. else start our second with it (attribute_not_exists(sec) OR
//     sec < :s);
//  3. else step 1 once more.
//
// A send counted in a newer second than its own only makes campaign sends
// of that second wait; a send not counted could let them exceed the rate,
// so Count never gives up on a failed condition alone. Steps 1 and 2
// together cover every stored state; when step 2 fails, another request
// stored a second at least ours between them, and the stored second only
// grows, so step 3's condition holds. Should it fail all the same, Count
// returns an error.
func (d *DynamoDB) Count(ctx context.Context, mchID string, now time.Time) error {
	sec := now.Unix()
	notOlder := expression.Name(attrPaceSec).GreaterThanEqual(expression.Value(sec))
	add := expression.Add(expression.Name(attrPaceN), expression.Value(1))

	ok, err := d.pace(ctx, "count", mchID, notOlder, add)
	if ok || err != nil {
		return err
	}
	if ok, err = d.pace(ctx, "count", mchID, newerSecond(sec), resetSecond(sec)); ok || err != nil {
		return err
	}
	if ok, err = d.pace(ctx, "count", mchID, notOlder, add); ok || err != nil {
		return err
	}
	return fmt.Errorf("campaign: window count %s at %d: the pacing item changed under every try", mchID, sec)
}

// newerSecond is the condition for starting second sec: the merchant has
// no second stored, or an older one.
func newerSecond(sec int64) expression.ConditionBuilder {
	return expression.Name(attrPaceSec).AttributeNotExists().
		Or(expression.Name(attrPaceSec).LessThan(expression.Value(sec)))
}

// resetSecond starts second sec with one send.
func resetSecond(sec int64) expression.UpdateBuilder {
	return expression.Set(expression.Name(attrPaceSec), expression.Value(sec)).
		Set(expression.Name(attrPaceN), expression.Value(1))
}

// pace makes one conditional UpdateItem of mchID's pacing item, and
// reports whether its condition held.
func (d *DynamoDB) pace(ctx context.Context, op, mchID string, cond expression.ConditionBuilder, upd expression.UpdateBuilder) (bool, error) {
	expr, err := expression.NewBuilder().WithCondition(cond).WithUpdate(upd).Build()
	if err != nil {
		return false, fmt.Errorf("campaign: window %s %s: %w", op, mchID, err)
	}
	_, err = d.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(d.table),
		Key:                       map[string]types.AttributeValue{HashKey: &types.AttributeValueMemberS{Value: PacePrefix + mchID}},
		ConditionExpression:       expr.Condition(),
		UpdateExpression:          expr.Update(),
		ExpressionAttributeNames:  expr.Names(),
		ExpressionAttributeValues: expr.Values(),
	})
	var ccf *types.ConditionalCheckFailedException
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &ccf):
		return false, nil
	default:
		return false, fmt.Errorf("campaign: window %s %s: %w", op, mchID, err)
	}
}

// campaignWriteError is the error of a conditional write of campaign
// what: failedCondition when its condition failed, err wrapped otherwise,
// nil for none.
func campaignWriteError(op, what string, err, failedCondition error) error {
	var ccf *types.ConditionalCheckFailedException
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ccf):
		return fmt.Errorf("campaign: %s %s: %w", op, what, failedCondition)
	default:
		return fmt.Errorf("campaign: %s %s: %w", op, what, err)
	}
}

// storedCampaign is a campaign's item: times as storeTimeLayout strings,
// empty optional attributes left out (an empty Outcomes reads back nil).
// A field added to Campaign must be added here; campaigntest's RoundTrip
// fails until it is. Settings are stored as a map
// (attrSettings), encoded apart with the json names of their fields.
type storedCampaign struct {
	ID          string         `dynamodbav:"id"`
	MchID       string         `dynamodbav:"mch_id"`
	State       State          `dynamodbav:"state"`
	Reason      string         `dynamodbav:"reason,omitempty"`
	Source      string         `dynamodbav:"source"`
	ETag        string         `dynamodbav:"etag,omitempty"`
	Identity    string         `dynamodbav:"identity"`
	RowsID      string         `dynamodbav:"rows_identity,omitempty"`
	Rows        int            `dynamodbav:"rows"`
	Amount      int64          `dynamodbav:"amount"`
	Planned     int            `dynamodbav:"planned"`
	Cursor      int            `dynamodbav:"cursor"`
	Sent        int            `dynamodbav:"sent"`
	Outcomes    map[string]int `dynamodbav:"outcomes,omitempty"` // encoded by encodeCampaign
	Rate        float64        `dynamodbav:"rate"`
	RunnerOwner string         `dynamodbav:"runner_owner,omitempty"`
	RunnerUntil string         `dynamodbav:"runner_until,omitempty"`
	CreatedAt   string         `dynamodbav:"created_at,omitempty"`
	StartedAt   string         `dynamodbav:"started_at,omitempty"`
	FinishedAt  string         `dynamodbav:"finished_at,omitempty"`
	UpdatedAt   string         `dynamodbav:"updated_at,omitempty"`
	ReportDue   bool           `dynamodbav:"report_due,omitempty"` // left out when false: List's filter needs only "= true"
	ReportedAt  string         `dynamodbav:"reported_at,omitempty"`
	Version     int64          `dynamodbav:"version"`
}

// settingsEncoder encodes Settings by their json names (and omitempty),
// so that a field added to Settings is stored without a change here.
func settingsEncoder(o *attributevalue.EncoderOptions) { o.TagKey = "json" }

// settingsDecoder decodes what settingsEncoder encodes.
func settingsDecoder(o *attributevalue.DecoderOptions) { o.TagKey = "json" }

// encodeCampaign is c's item at version.
func encodeCampaign(c *Campaign, version int64) (map[string]types.AttributeValue, error) {
	av, err := attributevalue.MarshalMap(storedCampaign{
		ID: c.ID, MchID: c.MchID, State: c.State, Reason: c.Reason,
		Source: c.Source, ETag: c.ETag, Identity: c.Identity, RowsID: c.RowsIdentity,
		Rows: c.Rows, Amount: c.Amount, Planned: c.Planned, Cursor: c.Cursor,
		Sent: c.Sent, Rate: c.Rate,
		RunnerOwner: c.RunnerOwner, RunnerUntil: formatStoredTime(c.RunnerUntil),
		CreatedAt:  formatStoredTime(c.CreatedAt),
		StartedAt:  formatStoredTime(c.StartedAt),
		FinishedAt: formatStoredTime(c.FinishedAt),
		UpdatedAt:  formatStoredTime(c.UpdatedAt),
		ReportDue:  c.ReportDue, ReportedAt: formatStoredTime(c.ReportedAt),
		Version: version,
	})
	if err != nil {
		return nil, fmt.Errorf("encode item: %w", err)
	}
	// Left out when empty (attributevalue's omitempty keeps an empty map),
	// so that an empty Outcomes reads back nil, as from Memory.
	if len(c.Outcomes) > 0 {
		outcomes, err := attributevalue.Marshal(c.Outcomes)
		if err != nil {
			return nil, fmt.Errorf("encode outcomes: %w", err)
		}
		av[attrOutcomes] = outcomes
	}
	settings, err := attributevalue.MarshalMapWithOptions(c.Settings, settingsEncoder)
	if err != nil {
		return nil, fmt.Errorf("encode settings: %w", err)
	}
	av[attrSettings] = &types.AttributeValueMemberM{Value: settings}
	return av, nil
}

// decodeCampaign reads a campaign's item.
func decodeCampaign(av map[string]types.AttributeValue) (*Campaign, error) {
	var r storedCampaign
	if err := attributevalue.UnmarshalMap(av, &r); err != nil {
		return nil, fmt.Errorf("read item: %w", err)
	}
	c := &Campaign{
		ID: r.ID, MchID: r.MchID, State: r.State, Reason: r.Reason,
		Source: r.Source, ETag: r.ETag, Identity: r.Identity, RowsIdentity: r.RowsID,
		Rows: r.Rows, Amount: r.Amount, Planned: r.Planned, Cursor: r.Cursor,
		Sent: r.Sent, Rate: r.Rate,
		RunnerOwner: r.RunnerOwner, ReportDue: r.ReportDue, Version: r.Version,
	}
	if len(r.Outcomes) > 0 {
		c.Outcomes = r.Outcomes
	}
	if s, ok := av[attrSettings].(*types.AttributeValueMemberM); ok {
		if err := attributevalue.UnmarshalMapWithOptions(s.Value, &c.Settings, settingsDecoder); err != nil {
			return nil, fmt.Errorf("read item %s: settings: %w", r.ID, err)
		}
	}
	for _, f := range []struct {
		name string
		s    string
		t    *time.Time
	}{
		{"runner_until", r.RunnerUntil, &c.RunnerUntil},
		{"created_at", r.CreatedAt, &c.CreatedAt},
		{"started_at", r.StartedAt, &c.StartedAt},
		{"finished_at", r.FinishedAt, &c.FinishedAt},
		{"updated_at", r.UpdatedAt, &c.UpdatedAt},
		{"reported_at", r.ReportedAt, &c.ReportedAt},
	} {
		if f.s == "" {
			continue
		}
		t, err := time.Parse(storeTimeLayout, f.s)
		if err != nil {
			return nil, fmt.Errorf("read item %s: %s: %w", r.ID, f.name, err)
		}
		*f.t = t
	}
	return c, nil
}

// formatStoredTime is t as stored; the zero time is "", left out.
func formatStoredTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return storedTime(t).Format(storeTimeLayout)
}

// storedTime is t as the stores keep it: UTC, to the millisecond.
func storedTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return time.UnixMilli(t.UnixMilli()).UTC()
}

// checkStoredID refuses an id that is not a campaign id: 1 to 64 of
// [A-Za-z0-9_-]. Checked before every write, so that no campaign item can
// take a pacing item's key.
func checkStoredID(op, id string) error {
	if !validID(id) {
		return fmt.Errorf("campaign: %s %q: a campaign id is 1 to 64 of A-Z, a-z, 0-9, _ and -", op, id)
	}
	return nil
}

// listed reports whether List returns c: it is not over (a runner has
// work in all but the Paused ones).
func listed(c *Campaign) bool {
	return c.State == Planning || c.State == Running || c.State == Paused || c.ReportDue
}

// sortCampaigns orders cs as List returns them: by CreatedAt, then ID.
func sortCampaigns(cs []*Campaign) {
	slices.SortFunc(cs, func(a, b *Campaign) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}

// The DynamoDB implementation satisfies both interfaces.
var (
	_ Store  = (*DynamoDB)(nil)
	_ Window = (*DynamoDB)(nil)
)
