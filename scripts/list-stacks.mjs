// Prints each synthesized stack and its template file, so `npm run synth` shows what it made.
import { readFileSync } from 'node:fs';

const manifest = JSON.parse(readFileSync('cdk.out/manifest.json', 'utf8'));
for (const [name, artifact] of Object.entries(manifest.artifacts ?? {})) {
  if (artifact.type !== 'aws:cloudformation:stack') continue;
  const template = JSON.parse(readFileSync(`cdk.out/${artifact.properties.templateFile}`, 'utf8'));
  const count = Object.keys(template.Resources ?? {}).length;
  console.log(`${name}\tcdk.out/${artifact.properties.templateFile}\t${count} resources`);
}
