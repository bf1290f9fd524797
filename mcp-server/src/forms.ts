import { readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import Ajv2020, { type ErrorObject, type ValidateFunction } from 'ajv/dist/2020';
import addFormats from 'ajv-formats';

/** One field of an intake form as the agent needs it to ask for it. */
export interface FormField {
  name: string;
  label: string;
  required: boolean;
  type: 'string';
  prompt?: string;
  allowedValues?: string[];
  format?: string;
  maxLength?: number;
}

export interface IntakeForm {
  intakeType: string;
  title: string;
  description: string;
  fields: FormField[];
}

export interface FieldError {
  field: string;
  message: string;
}

interface FormSchema {
  title?: string;
  description?: string;
  properties: Record<
    string,
    { description?: string; enum?: string[]; format?: string; maxLength?: number; 'x-voice-prompt'?: string }
  >;
  required?: string[];
}

interface LoadedForm {
  form: IntakeForm;
  validateAll: ValidateFunction;
  validateField: Map<string, ValidateFunction>;
}

const INTAKE_TYPE = /^[a-z][a-z0-9_]{0,63}$/;

/** Plain-language reason for one ajv error, for the agent to read back to the caller. */
function explain(error: ErrorObject, fieldOf: (name: string) => FormField | undefined): FieldError {
  const field =
    error.keyword === 'required'
      ? String(error.params.missingProperty)
      : error.instancePath.replace(/^\//, '') || '(form)';
  const property = fieldOf(field);
  switch (error.keyword) {
    case 'required':
      return { field, message: 'is required' };
    case 'enum':
      return { field, message: `must be one of: ${(property?.allowedValues ?? []).join(', ')}` };
    case 'format':
      return {
        field,
        message: `must be a valid ${error.params.format}${error.params.format === 'date' ? ' (YYYY-MM-DD)' : ''}`,
      };
    case 'pattern':
      return { field, message: `is not in the expected form (${property?.label ?? 'see the form'})` };
    case 'minLength':
      return { field, message: `is too short (at least ${error.params.limit} characters)` };
    case 'maxLength':
      return { field, message: `is too long (at most ${error.params.limit} characters)` };
    case 'additionalProperties':
      return { field: String(error.params.additionalProperty), message: 'is not a field of this form' };
    default:
      return { field, message: error.message ?? 'is invalid' };
  }
}

/**
 * Intake forms are configuration: one JSON Schema file per intake type (`<intakeType>.json`) in a folder. Loaded and
 * compiled once; an invalid file stops start-up with its name.
 */
export class FormCatalog {
  private readonly forms = new Map<string, LoadedForm>();

  constructor(
    directory: string,
    readonly defaultIntakeType: string,
  ) {
    const ajv = new Ajv2020({ allErrors: true, strict: false });
    addFormats(ajv);
    for (const file of readdirSync(directory)
      .filter((name) => name.endsWith('.json'))
      .sort()) {
      const intakeType = basename(file, '.json');
      if (!INTAKE_TYPE.test(intakeType)) throw new Error(`form file ${file}: the name must be a lowercase intake type`);
      const schema = JSON.parse(readFileSync(join(directory, file), 'utf8')) as FormSchema;
      if (!schema.properties || typeof schema.properties !== 'object')
        throw new Error(`form file ${file}: no properties`);
      const required = new Set(schema.required ?? []);
      const fields = Object.entries(schema.properties).map(([name, property]) => ({
        name,
        label: property.description ?? name,
        required: required.has(name),
        type: 'string' as const,
        prompt: property['x-voice-prompt'],
        allowedValues: property.enum,
        format: property.format,
        maxLength: property.maxLength,
      }));
      let validateAll: ValidateFunction;
      try {
        validateAll = ajv.compile(schema);
      } catch (error) {
        throw new Error(`form file ${file}: ${(error as Error).message}`);
      }
      const validateField = new Map(
        Object.entries(schema.properties).map(([name, property]) => [
          name,
          ajv.compile({ ...property, $schema: undefined }),
        ]),
      );
      this.forms.set(intakeType, {
        form: { intakeType, title: schema.title ?? intakeType, description: schema.description ?? '', fields },
        validateAll,
        validateField,
      });
    }
    if (!this.forms.has(defaultIntakeType)) {
      throw new Error(`default intake type ${defaultIntakeType} has no form file in ${directory}`);
    }
  }

  get intakeTypes(): string[] {
    return [...this.forms.keys()];
  }

  get(intakeType: string): IntakeForm | undefined {
    return this.forms.get(intakeType)?.form;
  }

  /** Checks only the given fields (progress may be partial): unknown names and invalid values. */
  validatePartial(intakeType: string, fields: Record<string, string>): FieldError[] {
    const loaded = this.require(intakeType);
    const errors: FieldError[] = [];
    for (const [name, value] of Object.entries(fields)) {
      const validate = loaded.validateField.get(name);
      if (!validate) {
        errors.push({ field: name, message: 'is not a field of this form' });
        continue;
      }
      const first = validate(value) ? undefined : validate.errors?.[0];
      if (first) errors.push(explain({ ...first, instancePath: `/${name}` }, (field) => this.fieldOf(loaded, field)));
    }
    return errors;
  }

  /** Checks a complete submission: every required field present and every value valid. */
  validateComplete(intakeType: string, fields: Record<string, string>): FieldError[] {
    const loaded = this.require(intakeType);
    if (loaded.validateAll(fields)) return [];
    return (loaded.validateAll.errors ?? []).map((error) => explain(error, (field) => this.fieldOf(loaded, field)));
  }

  missingRequired(intakeType: string, fields: Record<string, string>): string[] {
    return this.require(intakeType)
      .form.fields.filter((field) => field.required && !(field.name in fields))
      .map((field) => field.name);
  }

  private fieldOf(loaded: LoadedForm, name: string): FormField | undefined {
    return loaded.form.fields.find((field) => field.name === name);
  }

  private require(intakeType: string): LoadedForm {
    const loaded = this.forms.get(intakeType);
    if (!loaded) throw new UnknownIntakeTypeError(intakeType, this.intakeTypes);
    return loaded;
  }
}

export class UnknownIntakeTypeError extends Error {
  constructor(intakeType: string, known: string[]) {
    super(`unknown intake type "${intakeType}"; known types: ${known.join(', ')}`);
  }
}
