import { ConditionalCheckFailedException, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, PutCommand, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { CASE_TABLE_INDEXES, type IntakeCase, intakeCaseSchema } from '@voice-intake/contracts';
import {
  type CallbackRequest,
  CaseAlreadySubmittedError,
  type CaseStore,
  type Forwarding,
  type ForwardRefusal,
  type PendingForward,
  type SubmitResult,
  type TransferRecord,
} from './case-store';

/** The sparse index that finds a caller's cases, newest first. */
export const BY_PHONE_INDEX = CASE_TABLE_INDEXES.byPhone.name;

/**
 * The sparse index of cases waiting for delivery to the backend (the outbox): only a case that carries
 * `awaitingForward` is in it, sorted by `forwardDueAt` (when its next attempt is due). One partition value: it holds
 * only undelivered cases, and its writes (one per submit and one per attempt) stay far below a partition's limit at
 * call rates.
 */
export const AWAITING_FORWARD_INDEX = CASE_TABLE_INDEXES.awaitingForward.name;
/** The value of `awaitingForward` on a pending case (the index's partition). */
export const PENDING = 'PENDING';

/** Outbox bookkeeping kept on the case item, outside the intake case contract. */
const OUTBOX_ATTRIBUTES = [
  'awaitingForward',
  'forwardDueAt',
  'forwardAttempts',
  'forwardLastError',
  'forwardFailed',
] as const;

const caseKey = (caseId: string) => ({ pk: `CASE#${caseId}`, sk: 'CASE' });

function toCase(item: Record<string, unknown> | undefined): IntakeCase | undefined {
  if (!item) return undefined;
  const { pk: _pk, sk: _sk, gsi1pk: _gsi1pk, gsi1sk: _gsi1sk, ...stored } = item;
  for (const name of OUTBOX_ATTRIBUTES) delete stored[name];
  return intakeCaseSchema.parse(stored);
}

function forwardingOf(item: Record<string, unknown>, intakeCase: IntakeCase): Forwarding {
  if (intakeCase.status === 'forwarded')
    return { state: 'forwarded', at: intakeCase.forwardedAt ?? intakeCase.updatedAt };
  const failed = item.forwardFailed as ForwardRefusal | undefined;
  if (failed)
    return { state: 'refused', status: Number(failed.status), at: String(failed.at), error: String(failed.error) };
  if (item.awaitingForward === PENDING) {
    return {
      state: 'pending',
      dueAt: String(item.forwardDueAt),
      attempts: Number(item.forwardAttempts ?? 0),
      ...(item.forwardLastError ? { lastError: String(item.forwardLastError) } : {}),
    };
  }
  return { state: 'none' };
}

const isConditionFailure = (error: unknown) => error instanceof ConditionalCheckFailedException;

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

  private async getItem(caseId: string): Promise<Record<string, unknown> | undefined> {
    const { Item } = await this.client.send(
      new GetCommand({ TableName: this.tableName, Key: caseKey(caseId), ConsistentRead: true }),
    );
    return Item;
  }

  async getCase(caseId: string): Promise<IntakeCase | undefined> {
    return toCase(await this.getItem(caseId));
  }

  async getCaseForwarding(caseId: string): Promise<{ case: IntakeCase; forwarding: Forwarding } | undefined> {
    const item = await this.getItem(caseId);
    const intakeCase = toCase(item);
    return intakeCase && { case: intakeCase, forwarding: forwardingOf(item!, intakeCase) };
  }

  /** Writes the case unless it exists and is no longer a draft; keeps the first createdAt. */
  private async writeUnlessSubmitted(intakeCase: IntakeCase, forwardDueAt?: string): Promise<IntakeCase> {
    const { createdAt, ...rest } = intakeCase;
    const attributes: Record<string, unknown> = {
      ...rest,
      gsi1pk: `PHONE#${intakeCase.callerNumber}`,
      gsi1sk: intakeCase.updatedAt,
      // The outbox entry, in the same conditional write as the submit: a task that dies right after it leaves the
      // case pending, and any task's redrive delivers it.
      ...(forwardDueAt ? { awaitingForward: PENDING, forwardDueAt, forwardAttempts: 0 } : {}),
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

  async submit(submitted: IntakeCase, options: { forwardDueAt?: string } = {}): Promise<SubmitResult> {
    try {
      return { case: await this.writeUnlessSubmitted(submitted, options.forwardDueAt), created: true };
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
      const existing = await this.getCase(submitted.caseId);
      if (!existing) throw error;
      return { case: existing, created: false };
    }
  }

  async listDueForwards(now: string, limit: number): Promise<PendingForward[]> {
    const { Items } = await this.client.send(
      new QueryCommand({
        TableName: this.tableName,
        IndexName: AWAITING_FORWARD_INDEX,
        KeyConditionExpression: 'awaitingForward = :pending AND forwardDueAt <= :now',
        ExpressionAttributeValues: { ':pending': PENDING, ':now': now },
        ScanIndexForward: true,
        Limit: limit,
      }),
    );
    return (Items ?? []).map((item) => ({
      case: toCase(item)!,
      dueAt: String(item.forwardDueAt),
      attempts: Number(item.forwardAttempts ?? 0),
    }));
  }

  /** An update of a case item under a condition; false when the condition does not hold. */
  private async updateIf(input: {
    update: string;
    condition: string;
    names?: Record<string, string>;
    values: Record<string, unknown>;
    caseId: string;
  }): Promise<boolean> {
    try {
      await this.client.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: caseKey(input.caseId),
          UpdateExpression: input.update,
          ConditionExpression: input.condition,
          ...(input.names ? { ExpressionAttributeNames: input.names } : {}),
          ExpressionAttributeValues: input.values,
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }

  claimForward(caseId: string, claim: { seenDueAt: string; attempts: number; nextDueAt: string }): Promise<boolean> {
    return this.updateIf({
      caseId,
      update: 'SET forwardDueAt = :next, forwardAttempts = :attempts',
      condition: 'awaitingForward = :pending AND forwardDueAt = :seen AND #status = :submitted',
      names: { '#status': 'status' },
      values: {
        ':next': claim.nextDueAt,
        ':attempts': claim.attempts,
        ':pending': PENDING,
        ':seen': claim.seenDueAt,
        ':submitted': 'submitted',
      },
    });
  }

  async noteForwardError(caseId: string, error: string): Promise<void> {
    await this.updateIf({
      caseId,
      update: 'SET forwardLastError = :error',
      condition: 'awaitingForward = :pending',
      values: { ':error': error, ':pending': PENDING },
    });
  }

  markForwarded(caseId: string, at: string): Promise<boolean> {
    return this.updateIf({
      caseId,
      update:
        'SET #status = :forwarded, forwardedAt = :at REMOVE awaitingForward, forwardDueAt, forwardLastError, forwardFailed',
      condition: '#status = :submitted',
      names: { '#status': 'status' },
      values: { ':forwarded': 'forwarded', ':at': at, ':submitted': 'submitted' },
    });
  }

  markForwardRefused(caseId: string, refusal: ForwardRefusal): Promise<boolean> {
    return this.updateIf({
      caseId,
      update: 'SET forwardFailed = :refusal REMOVE awaitingForward, forwardDueAt',
      condition: '#status = :submitted',
      names: { '#status': 'status' },
      values: { ':refusal': refusal, ':submitted': 'submitted' },
    });
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
