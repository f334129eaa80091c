// Rows of one-character boxes in a form the site shows, for the masking tests of code boxes and
// date rows (masking-dates*.test.ts).
import { document, html } from "./dom.ts";

/** `count` one-character boxes, each with the attributes `attrs(n)` gives (n from 1). */
export const boxes = (count: number, attrs: (n: number) => string): string =>
  Array.from({ length: count }, (_, i) => `<input ${attrs(i + 1)}>`).join("");

/** The part each box of a DD MM YYYY row holds (boxes numbered from 1). */
export const part = (n: number): "day" | "month" | "year" => (n <= 2 ? "day" : n <= 4 ? "month" : "year");

/** `markup` in a form the site shows, in the page; a look-up of its elements. */
export function mounted(markup: string): (selector: string) => HTMLInputElement {
  const form = html(`<form data-tandem-unmask>${markup}</form>`);
  document.body.append(form);
  return (selector) => form.querySelector(selector) as HTMLInputElement;
}
