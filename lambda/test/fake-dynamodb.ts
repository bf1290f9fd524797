import {
  type AttributeValue,
  ConditionalCheckFailedException,
  DeleteItemCommand,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';

type Item = Record<string, AttributeValue>;

/**
 * An in-memory DynamoDB table behind aws-sdk-client-mock, implementing the conditional put the idempotency
 * persistence layer relies on (key absent, or expired, or an expired in-progress lock), so Powertools' real logic
 * decides what a redelivered event does.
 */
export function fakeIdempotencyTable(keyAttr = 'id') {
  const items = new Map<string, Item>();
  const mock = mockClient(DynamoDBClient);
  const keyOf = (key: Item) => key[keyAttr]?.S ?? '';
  const numberIn = (item: Item, attr: string) => (item[attr]?.N === undefined ? undefined : Number(item[attr].N));

  mock.on(PutItemCommand).callsFake((input) => {
    const names = input.ExpressionAttributeNames ?? {};
    const values = input.ExpressionAttributeValues ?? {};
    const id = keyOf(input.Item);
    const existing = items.get(id);
    if (existing) {
      const expiry = numberIn(existing, names['#expiry']);
      const expired = expiry !== undefined && expiry < Number(values[':now'].N);
      const lockExpiry = numberIn(existing, names['#in_progress_expiry']);
      const lockExpired =
        existing[names['#status']]?.S === values[':inprogress'].S &&
        lockExpiry !== undefined &&
        lockExpiry < Number(values[':now_in_millis'].N);
      if (!expired && !lockExpired) {
        throw new ConditionalCheckFailedException({
          message: 'The conditional request failed',
          $metadata: {},
          Item: existing,
        });
      }
    }
    items.set(id, { ...input.Item });
    return {};
  });
  mock.on(UpdateItemCommand).callsFake((input) => {
    const id = keyOf(input.Key);
    const item = { ...(items.get(id) ?? input.Key) };
    const assignments = input.UpdateExpression.replace(/^SET\s+/, '')
      .split(',')
      .map((part: string) => part.trim());
    for (const assignment of assignments) {
      const [name, value] = assignment.split('=').map((side: string) => side.trim());
      item[input.ExpressionAttributeNames[name]] = input.ExpressionAttributeValues[value];
    }
    items.set(id, item);
    return {};
  });
  mock.on(GetItemCommand).callsFake((input) => ({ Item: items.get(keyOf(input.Key)) }));
  const table = { mock, items, keepLocksOnDelete: false };
  mock.on(DeleteItemCommand).callsFake((input) => {
    // keepLocksOnDelete stands for an invocation that died before it could release its lock (timeout, crash).
    if (!table.keepLocksOnDelete) items.delete(keyOf(input.Key));
    return {};
  });
  return table;
}
