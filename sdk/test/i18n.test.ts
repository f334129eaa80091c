import assert from "node:assert/strict";
import { test } from "node:test";
import { type Catalogues, direction, format, missingKeys, pickLocale, placeholders, translator } from "../src/shared/i18n.ts";

const en = { hello: "Hello {name}", bye: "Goodbye" } as const;
const catalogues: Catalogues<typeof en> = {
  en,
  de: { hello: "Hallo {name}", bye: "Tschüss" },
  fr: { hello: "Bonjour {name}", bye: "Au revoir" },
  es: { hello: "Hola {name}", bye: "Adiós" },
  ar: { hello: "مرحبا {name}", bye: "" },
};

test("locales resolve by primary subtag, in order of preference, defaulting to English", () => {
  assert.equal(pickLocale("de-AT"), "de");
  assert.equal(pickLocale("DE_ch"), "de");
  assert.equal(pickLocale(undefined, "", "pt-BR", "fr"), "fr");
  assert.equal(pickLocale("xx", null), "en");
  assert.equal(pickLocale(), "en");
});

test("Arabic is right-to-left, the others left-to-right", () => {
  assert.equal(direction("ar"), "rtl");
  for (const locale of ["en", "de", "fr", "es"] as const) assert.equal(direction(locale), "ltr");
});

test("placeholders are filled as text; unknown ones stay", () => {
  assert.equal(format("Hi {name}, {missing}", { name: "<b>x</b>" }), "Hi <b>x</b>, {missing}");
  const t = translator(catalogues, "de");
  assert.equal(t("hello", { name: "Ana" }), "Hallo Ana");
  assert.deepEqual(placeholders("{b} and {a}"), ["a", "b"]);
});

test("an empty translation is reported and falls back to nothing worse than English at run time", () => {
  assert.deepEqual(missingKeys(catalogues), { ar: ["bye"] });
  assert.equal(translator({ ...catalogues, ar: { hello: "x", bye: undefined as unknown as string } }, "ar")("bye"), "Goodbye");
});
