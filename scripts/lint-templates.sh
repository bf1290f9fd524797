#!/usr/bin/env bash
# Lints what `npm run synth` wrote to cdk.out: cfn-lint (every template) and checkov (the whole assembly).
# Both are Python tools; .ci/run installs them into .venv. A finding fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
venv_bin="${LINT_VENV:-.venv}/bin"
if [ ! -x "$venv_bin/cfn-lint" ] || [ ! -x "$venv_bin/checkov" ]; then
  echo "cfn-lint/checkov not found in $venv_bin: run 'python3 -m venv .venv && .venv/bin/pip install -r requirements-lint.txt'" >&2
  exit 1
fi
shopt -s nullglob
templates=(cdk.out/*.template.json)
if [ ${#templates[@]} -eq 0 ]; then
  echo "no templates in cdk.out: run 'npm run synth' first" >&2
  exit 1
fi
echo "cfn-lint: ${#templates[@]} templates"
"$venv_bin/cfn-lint" --config-file .cfnlintrc.yaml
echo "cfn-lint: clean"
echo "checkov: cdk.out"
"$venv_bin/checkov" --config-file .checkov.yaml
