/**
 * Amazon Web Services plugins for LiveKit Agents (Node): Transcribe streaming STT, Bedrock
 * ConverseStream LLM and Polly TTS.
 */

export type { BackoffOptions } from '@voice-intake/contracts';
export { toBedrockConversation, toBedrockToolConfig } from './bedrock-format.js';
export {
  BEDROCK_MODEL_EXTRA,
  BedrockFallbackLLM,
  BedrockLLM,
  type BedrockLLMOptions,
  BedrockLLMStream,
  bedrockLLM,
  DEFAULT_BEDROCK_LLM_OPTIONS,
} from './llm.js';
export {
  DEFAULT_TRANSCRIBE_STT_OPTIONS,
  TranscribeSpeechStream,
  TranscribeSTT,
  type TranscribeSTTOptions,
} from './stt.js';
export {
  DEFAULT_POLLY_TTS_OPTIONS,
  PollyChunkedStream,
  PollySynthesizeStream,
  PollyTTS,
  type PollyTTSOptions,
} from './tts.js';
