/**
 * Amazon Web Services plugins for LiveKit Agents (Node): Transcribe streaming STT, Bedrock
 * ConverseStream LLM and Polly TTS.
 */
export {
  BEDROCK_MODEL_EXTRA,
  BedrockFallbackLLM,
  BedrockLLM,
  BedrockLLMStream,
  DEFAULT_BEDROCK_LLM_OPTIONS,
  bedrockLLM,
  type BedrockLLMOptions,
} from './llm.js';
export { toBedrockConversation, toBedrockToolConfig } from './bedrock-format.js';
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
export type { BackoffOptions } from '@voice-intake/contracts';
