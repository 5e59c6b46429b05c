// Package deploy holds no production code. Its tests check the deployment
// files at the repository root (template.yaml, Makefile, env/local.json)
// against the project's contract: the seven functions (five behind the
// API, the reconciler and the campaign runner on their schedules), their
// routes, IAM-only access to the API, least-privilege execution roles, the
// SQS queues with their dead-letter queue, the DynamoDB ledger table
// (compared with ledger.TableInput, its indexes due and campaign included)
// and CampaignTable with each function's exact item actions on them (no
// DeleteItem anywhere, Scan of CampaignTable alone), CampaignBucket
// (private, versioned, encrypted, TLS only, kept; the campaign functions'
// incoming/ and reports/ only; its S3 event on incoming/) and the absence
// of a circular dependency through it, each function's campaign variables,
// the schedules and their retries, the alarms (metric, statistic,
// threshold, topic), the
// dashboard (its body parsed as JSON once Fn::Sub has filled it in, each
// metric shown) and its URL per partition, and, with the template
// resolved for parameter values as CloudFormation would, each egress mode
// (public, subnets, create: VPC, NAT gateways, Elastic IPs, endpoints,
// EgressIps) and each architecture (arm64, x86_64, with the Makefile's
// GOARCH for it, run through make -n), and ARNs and URLs that hold in every
// partition. deploy/sam_transform.py runs the AWS SAM translator and
// cfn-lint over the same template for every parameter combination, in aws
// and aws-cn, and checks the stacks they make.
package deploy
