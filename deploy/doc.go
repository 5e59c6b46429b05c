// Package deploy holds no production code. Its tests check the deployment
// files at the repository root (template.yaml, Makefile, env/local.json)
// against the project's contract: the four functions, their routes, IAM-only
// access to the API, least-privilege execution roles, the SQS queues with
// their dead-letter queue, and the DynamoDB ledger table with each function's
// exact item actions on it. deploy/sam_transform.py runs the AWS SAM
// translator over the same template.
package deploy
