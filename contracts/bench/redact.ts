/**
 * Redaction cost: what `redactPii`/`redactDeep` add to each record written to the audit log and transcripts.
 *
 *   npm run bench -w contracts -- [--rounds 20000]
 *
 * Prints µs per call for typical records (1 kB of model text with a phone number, an e-mail and identifiers; a tool
 * call's arguments; a recording stop record that holds only identifiers), then ms for 100 kB and 200 kB of hostile
 * input: the second figure about twice the first means the cost stays linear in the text.
 */
import { parseArgs } from 'node:util';
import { redactDeep, redactPii } from '../src/redact';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '20000' } } });
const rounds = Number(values.rounds);

const modelText = [
  'Thanks, Ada. I have saved your request under case call-1764523976123 at 2026-11-30T17:32:56.123Z.',
  'I will ask the front desk to ring you back on +1 (415) 555-0123 or write to ada.l+intake@example.co.uk',
  'within 2 business days. Your recording is stored as recordings/call-1764523976123/part-000001.wav and',
  'the reference for the clinic is 123e4567-e89b-12d3-a456-426614174000. Is there anything else, for example',
  'a second number, a preferred time between 9 and 17, or notes for the doctor about the 3 symptoms you listed?',
  'If you would rather use WhatsApp, the clinic answers on https://wa.me/14155550199 during opening hours.',
  'Please keep your insurance card ready; you do not need to read out its number, part 12 of 3000 is enough.',
  'I have also noted that you prefer the morning slots and that your daughter may call on your behalf.',
  'Goodbye for now, and thank you for calling the clinic intake line today.',
].join(' ');

const toolCall = {
  arguments: {
    fields: {
      name: 'Ada Lovelace',
      callback: '415.555.0123',
      email: 'ada@example.com',
      notes: ['reach me after six', 'second number ٤١٥٥٥٥٠١٢٤'],
      dateOfVisit: '2026-12-02',
    },
    phoneAsNumber: 4155550123,
  },
};

const stopRecord = {
  parts: ['recordings/call-1764523976123/part-000001.wav', 'recordings/call-1764523976123/part-r001-000002.wav'],
  failedParts: [],
  consentRefused: false,
  startedAt: '2026-11-30T17:32:56.123Z',
  unsilencedSpans: [{ startMs: 1200, endMs: 3_600_000 }],
  sampleRate: 16000,
};

function microsPerCall(run: () => unknown): number {
  for (let i = 0; i < rounds / 10; i++) run();
  const started = process.hrtime.bigint();
  for (let i = 0; i < rounds; i++) run();
  return Number(process.hrtime.bigint() - started) / 1000 / rounds;
}

function millis(run: () => unknown): number {
  const started = process.hrtime.bigint();
  run();
  return Number(process.hrtime.bigint() - started) / 1e6;
}

const typical: [string, () => unknown][] = [
  [`model text, ${modelText.length} chars`, () => redactPii(modelText)],
  ['tool call arguments (redactDeep)', () => redactDeep(toolCall, redactPii)],
  ['recording stop record (redactDeep)', () => redactDeep(stopRecord, redactPii)],
];
console.log(`typical records, ${rounds} rounds each`);
for (const [name, run] of typical) console.log(`  ${name.padEnd(40)} ${microsPerCall(run).toFixed(1).padStart(8)} µs`);

const hostile: [string, (size: number) => string][] = [
  ['digits and dashes "1-1-1-…"', (size) => '1-'.repeat(size / 2)],
  ['"12--12--…"', (size) => '12--'.repeat(size / 4)],
  ['e-mail "a@a.a.a.a…"', (size) => `a@${'a.'.repeat(size / 2)}a`],
  ['dots without "@" "a.a.a…"', (size) => 'a.'.repeat(size / 2)],
  ['zero-width spaces between digits', (size) => '1\u200B'.repeat(size / 2)],
  ['letters and digits "a1a1a1…"', (size) => 'a1'.repeat(size / 2)],
  ['IBAN-like "DE89 DE89 …"', (size) => 'DE89 '.repeat(size / 5)],
  ['spoken digits "one, two. three…"', (size) => 'one, two. three '.repeat(size / 16)],
  ['spoken digits and numerals "one 1 one 1…"', (size) => 'one 1 '.repeat(size / 6)],
  ['model text repeated', (size) => modelText.repeat(Math.ceil(size / modelText.length)).slice(0, size)],
];
console.log('hostile input            100 kB      200 kB');
for (const [name, make] of hostile) {
  const [small, large] = [100_000, 200_000].map((size) => make(size));
  redactPii(small);
  const figures = [millis(() => redactPii(small)), millis(() => redactPii(large))];
  console.log(`  ${name.padEnd(34)} ${figures.map((ms) => `${ms.toFixed(1).padStart(7)} ms`).join(' ')}`);
}
