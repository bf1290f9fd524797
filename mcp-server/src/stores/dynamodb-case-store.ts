import { ConditionalCheckFailedException, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, PutCommand, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { type IntakeCase, intakeCaseSchema } from '@voice-intake/contracts';
import {
  type CallbackRequest,
  CaseAlreadySubmittedError,
  type CaseStore,
  type SubmitResult,
  type TransferRecord,
} from './case-store';

/** The sparse index that finds a caller's cases, newest first. */
export const BY_PHONE_INDEX = 'byPhone';

const caseKey = (caseId: string) => ({ pk: `CASE#${caseId}`, sk: 'CASE' });

function toCase(item: Record<string, unknown> | undefined): IntakeCase | undefined {
  if (!item) return undefined;
  const { pk: _pk, sk: _sk, gsi1pk: _gsi1pk, gsi1sk: _gsi1sk, ...stored } = item;
  return intakeCaseSchema.parse(stored);
}

/**
 * Cases in one DynamoDB table (single-table: cases, callbacks, transfers). Conditional writes make submission
 * idempotent across server instances: only a missing or draft case can be written.
 */
export class DynamoDbCaseStore implements CaseStore {
  private readonly client: DynamoDBDocumentClient;

  constructor(
    private readonly tableName: string,
    client?: DynamoDBDocumentClient,
  ) {
    this.client =
      client ??
      DynamoDBDocumentClient.from(new DynamoDBClient({}), { marshallOptions: { removeUndefinedValues: true } });
  }

  async getCase(caseId: string): Promise<IntakeCase | undefined> {
    const { Item } = await this.client.send(
      new GetCommand({ TableName: this.tableName, Key: caseKey(caseId), ConsistentRead: true }),
    );
    return toCase(Item);
  }

  /** Writes the case unless it exists and is no longer a draft; keeps the first createdAt. */
  private async writeUnlessSubmitted(intakeCase: IntakeCase): Promise<IntakeCase> {
    const { createdAt, ...rest } = intakeCase;
    const attributes: Record<string, unknown> = {
      ...rest,
      gsi1pk: `PHONE#${intakeCase.callerNumber}`,
      gsi1sk: intakeCase.updatedAt,
    };
    const names: Record<string, string> = { '#createdAt': 'createdAt', '#status': 'status', '#pk': 'pk' };
    const values: Record<string, unknown> = { ':createdAt': createdAt, ':draft': 'draft' };
    const sets = Object.entries(attributes).map(([name, value], index) => {
      names[`#a${index}`] = name;
      values[`:a${index}`] = value;
      return `#a${index} = :a${index}`;
    });
    const { Attributes } = await this.client.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: caseKey(intakeCase.caseId),
        UpdateExpression: `SET ${[...sets, '#createdAt = if_not_exists(#createdAt, :createdAt)'].join(', ')}`,
        ConditionExpression: 'attribute_not_exists(#pk) OR #status = :draft',
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: values,
        ReturnValues: 'ALL_NEW',
        ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
      }),
    );
    return toCase(Attributes) ?? intakeCase;
  }

  async saveDraft(draft: IntakeCase): Promise<IntakeCase> {
    try {
      return await this.writeUnlessSubmitted(draft);
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) {
        const existing = (await this.getCase(draft.caseId)) ?? draft;
        throw new CaseAlreadySubmittedError(existing);
      }
      throw error;
    }
  }

  async submit(submitted: IntakeCase): Promise<SubmitResult> {
    try {
      return { case: await this.writeUnlessSubmitted(submitted), created: true };
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
      const existing = await this.getCase(submitted.caseId);
      if (!existing) throw error;
      return { case: existing, created: false };
    }
  }

  async listCasesByPhone(callerNumber: string): Promise<IntakeCase[]> {
    const { Items } = await this.client.send(
      new QueryCommand({
        TableName: this.tableName,
        IndexName: BY_PHONE_INDEX,
        KeyConditionExpression: 'gsi1pk = :phone',
        ExpressionAttributeValues: { ':phone': `PHONE#${callerNumber}` },
        ScanIndexForward: false,
        Limit: 20,
      }),
    );
    return (Items ?? []).map((item) => toCase(item)!);
  }

  async saveCallback(request: CallbackRequest): Promise<void> {
    await this.client.send(
      new PutCommand({
        TableName: this.tableName,
        Item: { pk: `CALLBACK#${request.callbackId}`, sk: 'CALLBACK', ...request },
        ConditionExpression: 'attribute_not_exists(pk)',
      }),
    );
  }

  async saveTransfer(record: TransferRecord): Promise<void> {
    await this.client.send(
      new PutCommand({
        TableName: this.tableName,
        Item: { pk: `CALL#${record.callId}`, sk: `TRANSFER#${record.at}`, ...record },
      }),
    );
  }
}
