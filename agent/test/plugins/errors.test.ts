import { APIConnectionError, APIStatusError, APITimeoutError } from '@livekit/agents';
import { describe, expect, it } from 'vitest';
import { isNetworkError, isRetryableAwsError, toAPIError } from '../../src/plugins/aws/errors.js';

const withFields = (message: string, fields: Record<string, unknown>) => Object.assign(new Error(message), fields);

describe('AWS error classification', () => {
  it('takes connection failures for retryable, including what the HTTP/2 handler throws without a code', () => {
    const failures = [
      withFields('read ECONNRESET', { code: 'ECONNRESET' }),
      withFields('connect ECONNREFUSED 10.0.0.1:443', { code: 'ECONNREFUSED' }),
      // A stream reset mid-response: the SDK adds the response's 200 to it.
      withFields('Stream closed with error code NGHTTP2_INTERNAL_ERROR', {
        code: 'ERR_HTTP2_STREAM_ERROR',
        $metadata: { httpStatusCode: 200 },
      }),
      new Error('HTTP/2 stream is abnormally aborted in mid-communication with result code 2.'),
      new Error('Unexpected error: http2 request did not get a response'),
    ];
    for (const failure of failures) {
      expect(isNetworkError(failure), failure.message).toBe(true);
      expect(isRetryableAwsError(failure), failure.message).toBe(true);
      const mapped = toAPIError(failure, 'bedrock m');
      expect(mapped, failure.message).toBeInstanceOf(APIConnectionError);
      expect(mapped.retryable).toBe(true);
    }
  });

  it('reads an exception from inside an event stream by its name, not the stream response status', () => {
    const throttled = withFields('slow down', { name: 'ThrottlingException', $metadata: { httpStatusCode: 200 } });
    const mapped = toAPIError(throttled, 'bedrock m');
    expect(mapped).toBeInstanceOf(APIStatusError);
    expect(mapped).toMatchObject({ statusCode: 429, retryable: true });
    const broken = withFields('bad input', { name: 'ValidationException', $metadata: { httpStatusCode: 200 } });
    expect(toAPIError(broken, 'bedrock m')).toMatchObject({ statusCode: 400, retryable: false });
  });

  it('never retries our own abort or a client error', () => {
    expect(isRetryableAwsError(withFields('This operation was aborted', { name: 'AbortError' }))).toBe(false);
    const denied = withFields('denied', { name: 'AccessDeniedException', $metadata: { httpStatusCode: 403 } });
    expect(isRetryableAwsError(denied)).toBe(false);
  });

  it('keeps the kind of failure when it is made final', () => {
    const stall = new APITimeoutError({ message: 'no response', options: { retryable: true } });
    const final = toAPIError(stall, 'polly', { retryable: false });
    expect(final).toBeInstanceOf(APITimeoutError);
    expect(final.retryable).toBe(false);
    const status = new APIStatusError({ message: 'busy', options: { statusCode: 503, requestId: 'r1' } });
    const finalStatus = toAPIError(status, 'polly', { retryable: false });
    expect(finalStatus).toMatchObject({ statusCode: 503, requestId: 'r1', retryable: false });
  });
});
