/**
 * The subset of JSON Schema that msgspec writes for the wire messages, and a check of a value
 * against it. The schemas are generated (src/generated/protocol.ts) from the server's msgspec
 * definitions; the generator refuses any keyword not handled here. A value conforms exactly when
 * msgspec would accept it: strings' lengths count code points, as Python's do.
 */

export type Json = null | boolean | number | string | readonly Json[] | { readonly [key: string]: Json };

export interface Schema {
  readonly type?: "string" | "integer" | "number" | "boolean" | "null" | "object" | "array";
  readonly enum?: readonly Json[];
  readonly anyOf?: readonly Schema[];
  readonly properties?: { readonly [name: string]: Schema };
  readonly required?: readonly string[];
  readonly additionalProperties?: boolean | Schema;
  readonly items?: Schema;
  readonly minLength?: number;
  readonly maxLength?: number;
  readonly pattern?: string;
  readonly minItems?: number;
  readonly maxItems?: number;
  readonly minimum?: number;
  readonly maximum?: number;
}

const has = (value: object, key: string) => Object.prototype.hasOwnProperty.call(value, key);

function isObject(value: unknown): value is { [key: string]: unknown } {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function ofType(type: NonNullable<Schema["type"]>, value: unknown): boolean {
  switch (type) {
    case "string": return typeof value === "string";
    case "integer": return Number.isSafeInteger(value);
    case "number": return typeof value === "number" && Number.isFinite(value);
    case "boolean": return typeof value === "boolean";
    case "null": return value === null;
    case "object": return isObject(value);
    case "array": return Array.isArray(value);
  }
}

/** Whether `value` (parsed JSON) conforms to `schema`. Never throws. */
export function conforms(schema: Schema, value: unknown): boolean {
  if (schema.type !== undefined && !ofType(schema.type, value)) return false;
  if (schema.enum !== undefined && !schema.enum.some((option) => option === value)) return false;
  if (schema.anyOf !== undefined && !schema.anyOf.some((option) => conforms(option, value))) return false;
  if (typeof value === "string") {
    const length = schema.minLength !== undefined || schema.maxLength !== undefined ? [...value].length : 0;
    if (schema.minLength !== undefined && length < schema.minLength) return false;
    if (schema.maxLength !== undefined && length > schema.maxLength) return false;
    if (schema.pattern !== undefined && !new RegExp(schema.pattern, "u").test(value)) return false;
  }
  if (typeof value === "number") {
    if (schema.minimum !== undefined && value < schema.minimum) return false;
    if (schema.maximum !== undefined && value > schema.maximum) return false;
  }
  if (Array.isArray(value)) {
    if (schema.minItems !== undefined && value.length < schema.minItems) return false;
    if (schema.maxItems !== undefined && value.length > schema.maxItems) return false;
    const items = schema.items;
    if (items !== undefined && !value.every((item) => conforms(items, item))) return false;
  }
  if (isObject(value)) {
    const properties = schema.properties ?? {};
    for (const name of schema.required ?? []) if (!has(value, name)) return false;
    for (const [name, item] of Object.entries(value)) {
      const known = has(properties, name) ? properties[name] : undefined;
      if (known !== undefined) {
        if (!conforms(known, item)) return false;
      } else if (schema.additionalProperties === false) {
        return false;
      } else if (typeof schema.additionalProperties === "object" && !conforms(schema.additionalProperties, item)) {
        return false;
      }
    }
  }
  return true;
}
