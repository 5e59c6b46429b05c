package ledger

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// The table's key: HASH mch_id (S), RANGE mch_billno (S).
const (
	HashKey  = "mch_id"
	RangeKey = "mch_billno"
)

// Attribute names used in conditions and updates; the others are in the
// record struct's tags.
const (
	attrHash       = "hash"
	attrState      = "state"
	attrAttempts   = "attempts"
	attrSettled    = "settled"
	attrFirstTried = "first_tried_at"
	attrLastTried  = "last_tried_at"
	attrUpdated    = "updated_at"
	attrLeaseOwner = "lease_owner"
	attrLeaseUntil = "lease_until"
	attrSendListID = "send_listid"
	attrErrCode    = "err_code"
	attrErrCodeDes = "err_code_des"
	attrPackage    = "package"
	attrJSAPI      = "jsapi"
	attrStatus     = "status"
	attrReason     = "reason"
	attrRefundTime = "refund_time"
	attrRefundAmt  = "refund_amount"
	attrChecked    = "checked_at"
)

// The reconciler's index (Store.Due): a global secondary index named
// DueIndex, HASH due (S), RANGE next_check_at (S), projecting all
// attributes. It is sparse: an item is in it only while it has a next
// check, with due set to its mch_id (one index partition per merchant);
// the writes that take the next check away (a final state) remove both
// attributes. TableInput creates it; the template's LedgerTable declares
// the same:
//
//	AttributeDefinitions:
//	  - {AttributeName: due, AttributeType: S}
//	  - {AttributeName: next_check_at, AttributeType: S}
//	GlobalSecondaryIndexes:
//	  - IndexName: due
//	    KeySchema:
//	      - {AttributeName: due, KeyType: HASH}
//	      - {AttributeName: next_check_at, KeyType: RANGE}
//	    Projection: {ProjectionType: ALL}
const (
	DueIndex      = "due"
	AttrDue       = "due"
	AttrNextCheck = "next_check_at"
)

// The campaigns' index (Store.CampaignRows): a global secondary index
// named CampaignIndex, HASH campaign_id (S), RANGE campaign_row (N),
// projecting all attributes. It is sparse: an item is in it only when it
// has both, which only a campaign's planned items do (a send's item may
// name its campaign, but has no row). No write changes either attribute
// after Create. TableInput creates it; the template's LedgerTable
// declares the same:
//
//	AttributeDefinitions:
//	  - {AttributeName: campaign_id, AttributeType: S}
//	  - {AttributeName: campaign_row, AttributeType: N}
//	GlobalSecondaryIndexes:
//	  - IndexName: campaign
//	    KeySchema:
//	      - {AttributeName: campaign_id, KeyType: HASH}
//	      - {AttributeName: campaign_row, KeyType: RANGE}
//	    Projection: {ProjectionType: ALL}
const (
	CampaignIndex   = "campaign"
	AttrCampaignID  = "campaign_id"
	AttrCampaignRow = "campaign_row"
)

// timeLayout is how times are stored: UTC to the millisecond, fixed width,
// so that comparing the strings compares the times.
const timeLayout = "2006-01-02T15:04:05.000Z"

// DynamoDBAPI is the part of *dynamodb.Client the store uses.
type DynamoDBAPI interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
}

// DynamoDB is a Store in a DynamoDB table. Each method is one request:
// Get a strongly consistent GetItem, Create a conditional PutItem,
// Acquire, Settle, Observe and Reconcile conditional UpdateItems, Due a
// Query of the index DueIndex, and CampaignRows Queries of the index
// CampaignIndex (one per page of up to 1 MB read).
type DynamoDB struct {
	client DynamoDBAPI
	table  string
}

// NewDynamoDB returns a store over the table.
func NewDynamoDB(client DynamoDBAPI, table string) *DynamoDB {
	return &DynamoDB{client: client, table: table}
}

// Get implements Store.
func (d *DynamoDB) Get(ctx context.Context, k Key) (*Item, error) {
	if err := checkKey("get", k); err != nil {
		return nil, err
	}
	out, err := d.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(d.table),
		Key:            key(k),
		ConsistentRead: aws.Bool(true), // a repeat must see the write just made
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: get %s: %w", k, err)
	}
	if len(out.Item) == 0 {
		return nil, fmt.Errorf("ledger: get %s: %w", k, ErrNotFound)
	}
	it, err := decode(out.Item)
	if err != nil {
		return nil, fmt.Errorf("ledger: get %s: %w", k, err)
	}
	return it, nil
}

// Create implements Store.
func (d *DynamoDB) Create(ctx context.Context, it *Item) error {
	if err := prepareCreate(it); err != nil {
		return err
	}
	k := it.Key()
	av, err := attributevalue.MarshalMap(toRecord(it))
	if err != nil {
		return fmt.Errorf("ledger: create %s: %w", k, err)
	}
	// A billno is recorded once: a second Create must not replace the record.
	cond := expression.Name(HashKey).AttributeNotExists()
	expr, err := expression.NewBuilder().WithCondition(cond).Build()
	if err != nil {
		return fmt.Errorf("ledger: create %s: %w", k, err)
	}
	_, err = d.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                 aws.String(d.table),
		Item:                      av,
		ConditionExpression:       expr.Condition(),
		ExpressionAttributeNames:  expr.Names(),
		ExpressionAttributeValues: expr.Values(),
	})
	return writeError("create", k, err, ErrExists)
}

// Acquire implements Store.
func (d *DynamoDB) Acquire(ctx context.Context, k Key, l Lease) (*Item, error) {
	if err := checkLease(k, l); err != nil {
		return nil, err
	}
	now := ms(l.Now)
	upd := expression.Add(expression.Name(attrAttempts), expression.Value(1)).
		// A planned item's first send is its first try; a sent item's
		// first try stays.
		Set(expression.Name(attrFirstTried), expression.IfNotExists(expression.Name(attrFirstTried), expression.Value(formatTime(now)))).
		Set(expression.Name(attrLastTried), expression.Value(formatTime(now))).
		Set(expression.Name(attrUpdated), expression.Value(formatTime(now))).
		Set(expression.Name(attrLeaseOwner), expression.Value(l.Owner)).
		Set(expression.Name(attrLeaseUntil), expression.Value(formatTime(l.Until)))
	upd = setNextCheck(upd, k, checkAfterLease(l.Until))
	cond := expression.And(
		// Never a new red packet: only an item Create recorded.
		expression.Name(HashKey).AttributeExists(),
		// Only the request recorded for the billno, not another one.
		expression.Name(attrHash).Equal(expression.Value(l.Hash)),
		// Not an item WeChat paid: a repeat of it is answered from the ledger.
		resendable(),
		// Not while another send holds the lease.
		leaseFreeCond(now),
		// Not sooner after the last send than WeChat allows between tries;
		// a planned item was never tried.
		expression.Or(
			expression.Name(attrLastTried).AttributeNotExists(),
			expression.Name(attrLastTried).LessThanEqual(expression.Value(formatTime(now.Add(-MinRetryGap)))),
		),
	)
	out, err := d.update(ctx, "acquire", k, cond, upd, types.ReturnValueAllNew)
	if err != nil {
		return nil, err
	}
	it, err := decode(out.Attributes)
	if err != nil {
		return nil, fmt.Errorf("ledger: acquire %s: %w", k, err)
	}
	return it, nil
}

// Settle implements Store.
func (d *DynamoDB) Settle(ctx context.Context, k Key, s Settlement) error {
	if err := checkSettlement(k, s); err != nil {
		return err
	}
	upd := expression.Set(expression.Name(attrState), expression.Value(s.State)).
		Set(expression.Name(attrUpdated), expression.Value(formatTime(s.Now))).
		Add(expression.Name(attrSettled), expression.Value(1)).
		Remove(expression.Name(attrLeaseOwner)).
		Remove(expression.Name(attrLeaseUntil))
	upd = setNextCheck(upd, k, FirstCheck(s.State, s.Now))
	upd = setOrRemove(upd, attrSendListID, s.SendListID)
	upd = setOrRemove(upd, attrErrCode, s.ErrCode)
	upd = setOrRemove(upd, attrErrCodeDes, s.ErrCodeDes)
	upd = setOrRemove(upd, attrPackage, s.Package)
	if len(s.JSAPI) > 0 {
		upd = upd.Set(expression.Name(attrJSAPI), expression.Value(s.JSAPI))
	} else {
		upd = upd.Remove(expression.Name(attrJSAPI))
	}
	// Only the lease's holder stores its outcome, once: not a send whose
	// lease another took since, nor a Settle repeated.
	cond := expression.Name(attrLeaseOwner).Equal(expression.Value(s.Owner))
	_, err := d.update(ctx, "settle", k, cond, upd, "")
	return err
}

// Observe implements Store.
func (d *DynamoDB) Observe(ctx context.Context, k Key, o Observation) error {
	if err := checkObservation(k, o); err != nil {
		return err
	}
	now := ms(o.Now)
	upd := expression.Set(expression.Name(attrUpdated), expression.Value(formatTime(now)))
	if o.Status != "" {
		upd = upd.Set(expression.Name(attrStatus), expression.Value(o.Status))
	}
	// Never an item that was not recorded (an update would create one).
	cond := expression.Name(HashKey).AttributeExists()
	if o.To != "" {
		upd = upd.Set(expression.Name(attrState), expression.Value(o.To)).
			Remove(expression.Name(attrLeaseOwner)). // a late Settle of an ended lease must not undo the move
			Remove(expression.Name(attrLeaseUntil))
		upd = setNextCheck(upd, k, FirstCheck(o.To, now))
		cond = cond.And(
			// A move starts from the state the caller read (checkObservation
			// checked the move is a ValidTransition).
			expression.Name(attrState).Equal(expression.Value(o.From)),
			// Not while a send is in flight: its Settle decides first.
			leaseFreeCond(now),
		)
	}
	_, err := d.update(ctx, "observe", k, cond, upd, "")
	return err
}

// Due implements Store: one Query of the index DueIndex, the merchant's
// partition up to now, earliest first.
func (d *DynamoDB) Due(ctx context.Context, mchID string, now time.Time, limit int) ([]*Item, error) {
	if err := checkDue(mchID, now, limit); err != nil {
		return nil, err
	}
	keyCond := expression.Key(AttrDue).Equal(expression.Value(mchID)).
		And(expression.Key(AttrNextCheck).LessThanEqual(expression.Value(formatTime(now))))
	expr, err := expression.NewBuilder().WithKeyCondition(keyCond).Build()
	if err != nil {
		return nil, fmt.Errorf("ledger: due %s: %w", mchID, err)
	}
	out, err := d.client.Query(ctx, &dynamodb.QueryInput{
		TableName:                 aws.String(d.table),
		IndexName:                 aws.String(DueIndex),
		KeyConditionExpression:    expr.KeyCondition(),
		ExpressionAttributeNames:  expr.Names(),
		ExpressionAttributeValues: expr.Values(),
		ScanIndexForward:          aws.Bool(true),
		Limit:                     aws.Int32(int32(min(limit, math.MaxInt32))),
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: due %s: %w", mchID, err)
	}
	items := make([]*Item, 0, len(out.Items))
	for _, av := range out.Items {
		it, err := decode(av)
		if err != nil {
			return nil, fmt.Errorf("ledger: due %s: %w", mchID, err)
		}
		items = append(items, it)
	}
	return items, nil
}

// CampaignRows implements Store: Queries of the index CampaignIndex, the
// campaign's partition after the row after, by row, until limit items or
// the partition's end. The index is eventually consistent: see
// Store.CampaignRows.
func (d *DynamoDB) CampaignRows(ctx context.Context, campaignID string, after, limit int) ([]*Item, error) {
	if err := checkCampaignRows(campaignID, limit); err != nil {
		return nil, err
	}
	keyCond := expression.Key(AttrCampaignID).Equal(expression.Value(campaignID)).
		And(expression.Key(AttrCampaignRow).GreaterThan(expression.Value(after)))
	expr, err := expression.NewBuilder().WithKeyCondition(keyCond).Build()
	if err != nil {
		return nil, fmt.Errorf("ledger: campaign rows %s: %w", campaignID, err)
	}
	var items []*Item
	var start map[string]types.AttributeValue
	// A Query reads at most 1 MB: a short page is not the partition's end
	// while it says where to go on (LastEvaluatedKey).
	for {
		out, err := d.client.Query(ctx, &dynamodb.QueryInput{
			TableName:                 aws.String(d.table),
			IndexName:                 aws.String(CampaignIndex),
			KeyConditionExpression:    expr.KeyCondition(),
			ExpressionAttributeNames:  expr.Names(),
			ExpressionAttributeValues: expr.Values(),
			ScanIndexForward:          aws.Bool(true),
			Limit:                     aws.Int32(int32(min(limit-len(items), math.MaxInt32))),
			ExclusiveStartKey:         start,
		})
		if err != nil {
			return nil, fmt.Errorf("ledger: campaign rows %s: %w", campaignID, err)
		}
		for _, av := range out.Items {
			it, err := decode(av)
			if err != nil {
				return nil, fmt.Errorf("ledger: campaign rows %s: %w", campaignID, err)
			}
			items = append(items, it)
		}
		if len(items) >= limit || len(out.LastEvaluatedKey) == 0 {
			return items, nil
		}
		start = out.LastEvaluatedKey
	}
}

// Reconcile implements Store.
func (d *DynamoDB) Reconcile(ctx context.Context, k Key, r Reconciliation) error {
	if err := checkReconciliation(k, r); err != nil {
		return err
	}
	now := ms(r.Now)
	upd := expression.Set(expression.Name(attrUpdated), expression.Value(formatTime(now))).
		Set(expression.Name(attrChecked), expression.Value(formatTime(now)))
	upd = setNextCheck(upd, k, r.NextCheckAt)
	for _, f := range []struct{ name, value string }{{attrStatus, r.Status}, {attrReason, r.Reason}, {attrRefundTime, r.RefundTime}} {
		if f.value != "" {
			upd = upd.Set(expression.Name(f.name), expression.Value(f.value))
		}
	}
	if r.RefundAmount > 0 {
		upd = upd.Set(expression.Name(attrRefundAmt), expression.Value(r.RefundAmount))
	}
	if r.To != r.From {
		upd = upd.Set(expression.Name(attrState), expression.Value(r.To)).
			Remove(expression.Name(attrLeaseOwner)). // a late Settle of an ended lease must not undo the move
			Remove(expression.Name(attrLeaseUntil))
	}
	cond := expression.And(
		// Never an item that was not recorded (an update would create one).
		expression.Name(HashKey).AttributeExists(),
		// Only from the item as the caller read it: of two reconcilers
		// that read it, one writes (checkReconciliation checked the move).
		expression.Name(attrState).Equal(expression.Value(r.From)),
		nextCheckIs(r.ReadNextCheckAt),
		// Not while a send is in flight: its Settle decides first.
		leaseFreeCond(now),
	)
	_, err := d.update(ctx, "reconcile", k, cond, upd, "")
	return err
}

// setNextCheck sets the next check and the index attribute due (the
// merchant), or removes both when next is zero: the item leaves Due.
func setNextCheck(upd expression.UpdateBuilder, k Key, next time.Time) expression.UpdateBuilder {
	if next.IsZero() {
		return upd.Remove(expression.Name(AttrNextCheck)).Remove(expression.Name(AttrDue))
	}
	return upd.Set(expression.Name(AttrNextCheck), expression.Value(formatTime(next))).
		Set(expression.Name(AttrDue), expression.Value(k.MchID))
}

// nextCheckIs is the condition that the next check is next (none when
// zero).
func nextCheckIs(next time.Time) expression.ConditionBuilder {
	if next.IsZero() {
		return expression.Name(AttrNextCheck).AttributeNotExists()
	}
	return expression.Name(AttrNextCheck).Equal(expression.Value(formatTime(next)))
}

// update makes one UpdateItem of k: upd, only if cond holds (else
// ErrPrecondition).
func (d *DynamoDB) update(ctx context.Context, op string, k Key, cond expression.ConditionBuilder, upd expression.UpdateBuilder, ret types.ReturnValue) (*dynamodb.UpdateItemOutput, error) {
	expr, err := expression.NewBuilder().WithCondition(cond).WithUpdate(upd).Build()
	if err != nil {
		return nil, fmt.Errorf("ledger: %s %s: %w", op, k, err)
	}
	out, err := d.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(d.table),
		Key:                       key(k),
		ConditionExpression:       expr.Condition(),
		UpdateExpression:          expr.Update(),
		ExpressionAttributeNames:  expr.Names(),
		ExpressionAttributeValues: expr.Values(),
		ReturnValues:              ret,
	})
	if err := writeError(op, k, err, ErrPrecondition); err != nil {
		return nil, err
	}
	return out, nil
}

// leaseFreeCond is the condition that no send holds the lease at now.
func leaseFreeCond(now time.Time) expression.ConditionBuilder {
	return expression.Or(
		expression.Name(attrLeaseUntil).AttributeNotExists(),
		expression.Name(attrLeaseUntil).LessThan(expression.Value(formatTime(now))),
	)
}

// resendable is the condition that the state is Resendable.
func resendable() expression.ConditionBuilder {
	var states []expression.OperandBuilder
	for _, s := range allStates {
		if s.Resendable() {
			states = append(states, expression.Value(s))
		}
	}
	return expression.Name(attrState).In(states[0], states[1:]...)
}

func setOrRemove(upd expression.UpdateBuilder, name, value string) expression.UpdateBuilder {
	if value == "" {
		return upd.Remove(expression.Name(name))
	}
	return upd.Set(expression.Name(name), expression.Value(value))
}

// writeError maps a failed condition to failedCondition, and wraps any
// other error: the ledger is unavailable.
func writeError(op string, k Key, err, failedCondition error) error {
	var ccf *types.ConditionalCheckFailedException
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ccf):
		return fmt.Errorf("ledger: %s %s: %w", op, k, failedCondition)
	default:
		return fmt.Errorf("ledger: %s %s: %w", op, k, err)
	}
}

// TableInput returns the CreateTable request of a ledger table: the key
// HASH mch_id, RANGE mch_billno (both strings), the reconciler's index
// DueIndex (see AttrDue) and the campaigns' index CampaignIndex (see
// AttrCampaignID), billed per request, and no TTL attribute (items never
// expire).
func TableInput(table string) *dynamodb.CreateTableInput {
	return &dynamodb.CreateTableInput{
		TableName: aws.String(table),
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(HashKey), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(RangeKey), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(AttrDue), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(AttrNextCheck), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(AttrCampaignID), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(AttrCampaignRow), AttributeType: types.ScalarAttributeTypeN},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(HashKey), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(RangeKey), KeyType: types.KeyTypeRange},
		},
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{{
			IndexName: aws.String(DueIndex),
			KeySchema: []types.KeySchemaElement{
				{AttributeName: aws.String(AttrDue), KeyType: types.KeyTypeHash},
				{AttributeName: aws.String(AttrNextCheck), KeyType: types.KeyTypeRange},
			},
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeAll},
		}, {
			IndexName: aws.String(CampaignIndex),
			KeySchema: []types.KeySchemaElement{
				{AttributeName: aws.String(AttrCampaignID), KeyType: types.KeyTypeHash},
				{AttributeName: aws.String(AttrCampaignRow), KeyType: types.KeyTypeRange},
			},
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeAll},
		}},
		BillingMode: types.BillingModePayPerRequest,
	}
}

// CreateTable creates a ledger table (TableInput) and waits until it is
// active, for tests and local runs. Deployed tables come from the template.
func CreateTable(ctx context.Context, client *dynamodb.Client, table string) error {
	if _, err := client.CreateTable(ctx, TableInput(table)); err != nil {
		return fmt.Errorf("ledger: create table %s: %w", table, err)
	}
	w := dynamodb.NewTableExistsWaiter(client, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay = time.Second
	})
	if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)}, 2*time.Minute); err != nil {
		return fmt.Errorf("ledger: create table %s: %w", table, err)
	}
	return nil
}

// record is an item as stored: times as timeLayout strings, empty
// optional attributes left out.
type record struct {
	MchID        string            `dynamodbav:"mch_id"`
	MchBillno    string            `dynamodbav:"mch_billno"`
	API          string            `dynamodbav:"api"`
	Fields       map[string]string `dynamodbav:"fields,omitempty"`
	Hash         string            `dynamodbav:"hash"`
	State        State             `dynamodbav:"state"`
	Attempts     int               `dynamodbav:"attempts"`
	Settled      int               `dynamodbav:"settled"`
	RecordedAt   string            `dynamodbav:"recorded_at,omitempty"`
	FirstTriedAt string            `dynamodbav:"first_tried_at,omitempty"`
	LastTriedAt  string            `dynamodbav:"last_tried_at,omitempty"`
	UpdatedAt    string            `dynamodbav:"updated_at,omitempty"`
	LeaseOwner   string            `dynamodbav:"lease_owner,omitempty"`
	LeaseUntil   string            `dynamodbav:"lease_until,omitempty"`
	SendListID   string            `dynamodbav:"send_listid,omitempty"`
	ErrCode      string            `dynamodbav:"err_code,omitempty"`
	ErrCodeDes   string            `dynamodbav:"err_code_des,omitempty"`
	Package      string            `dynamodbav:"package,omitempty"`
	JSAPI        map[string]string `dynamodbav:"jsapi,omitempty"`
	Status       string            `dynamodbav:"status,omitempty"`
	Reason       string            `dynamodbav:"reason,omitempty"`
	RefundTime   string            `dynamodbav:"refund_time,omitempty"`
	RefundAmount int64             `dynamodbav:"refund_amount,omitempty"`
	NextCheckAt  string            `dynamodbav:"next_check_at,omitempty"`
	Due          string            `dynamodbav:"due,omitempty"` // the index's partition: mch_id while NextCheckAt is set
	CheckedAt    string            `dynamodbav:"checked_at,omitempty"`
	Source       string            `dynamodbav:"source,omitempty"`
	Caller       string            `dynamodbav:"caller,omitempty"`
	CampaignID   string            `dynamodbav:"campaign_id,omitempty"`
	CampaignRow  int               `dynamodbav:"campaign_row,omitempty"` // with campaign_id, the index CampaignIndex's key
}

func toRecord(it *Item) record {
	return record{
		MchID: it.MchID, MchBillno: it.MchBillno,
		API: it.API, Fields: it.Fields, Hash: it.Hash,
		State: it.State, Attempts: it.Attempts, Settled: it.Settled,
		RecordedAt:   formatTime(it.RecordedAt),
		FirstTriedAt: formatTime(it.FirstTriedAt),
		LastTriedAt:  formatTime(it.LastTriedAt),
		UpdatedAt:    formatTime(it.UpdatedAt),
		LeaseOwner:   it.LeaseOwner,
		LeaseUntil:   formatTime(it.LeaseUntil),
		SendListID:   it.SendListID, ErrCode: it.ErrCode, ErrCodeDes: it.ErrCodeDes,
		Package: it.Package, JSAPI: it.JSAPI,
		Status: it.Status, Reason: it.Reason, RefundTime: it.RefundTime, RefundAmount: it.RefundAmount,
		NextCheckAt: formatTime(it.NextCheckAt), Due: due(it), CheckedAt: formatTime(it.CheckedAt),
		Source: it.Source, Caller: it.Caller, CampaignID: it.CampaignID, CampaignRow: it.CampaignRow,
	}
}

// due is the index attribute of an item: its merchant while it has a next
// check.
func due(it *Item) string {
	if it.NextCheckAt.IsZero() {
		return ""
	}
	return it.MchID
}

// decode reads a stored item.
func decode(av map[string]types.AttributeValue) (*Item, error) {
	var r record
	if err := attributevalue.UnmarshalMap(av, &r); err != nil {
		return nil, fmt.Errorf("read item: %w", err)
	}
	it := &Item{
		MchID: r.MchID, MchBillno: r.MchBillno,
		API: r.API, Fields: cloneMap(r.Fields), Hash: r.Hash,
		State: r.State, Attempts: r.Attempts, Settled: r.Settled,
		LeaseOwner: r.LeaseOwner,
		SendListID: r.SendListID, ErrCode: r.ErrCode, ErrCodeDes: r.ErrCodeDes,
		Package: r.Package, JSAPI: cloneMap(r.JSAPI),
		Status: r.Status, Reason: r.Reason, RefundTime: r.RefundTime, RefundAmount: r.RefundAmount,
		Source: r.Source, Caller: r.Caller, CampaignID: r.CampaignID, CampaignRow: r.CampaignRow,
	}
	for _, f := range []struct {
		name string
		s    string
		t    *time.Time
	}{
		{"recorded_at", r.RecordedAt, &it.RecordedAt},
		{"first_tried_at", r.FirstTriedAt, &it.FirstTriedAt},
		{"last_tried_at", r.LastTriedAt, &it.LastTriedAt},
		{"updated_at", r.UpdatedAt, &it.UpdatedAt},
		{"lease_until", r.LeaseUntil, &it.LeaseUntil},
		{"next_check_at", r.NextCheckAt, &it.NextCheckAt},
		{"checked_at", r.CheckedAt, &it.CheckedAt},
	} {
		if f.s == "" {
			continue
		}
		t, err := time.Parse(timeLayout, f.s)
		if err != nil {
			return nil, fmt.Errorf("read item: %s: %w", f.name, err)
		}
		*f.t = t
	}
	return it, nil
}

// formatTime is t as stored; the zero time is "", not stored.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return ms(t).Format(timeLayout)
}

func key(k Key) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		HashKey:  &types.AttributeValueMemberS{Value: k.MchID},
		RangeKey: &types.AttributeValueMemberS{Value: k.MchBillno},
	}
}
