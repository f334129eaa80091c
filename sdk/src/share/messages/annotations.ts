/**
 * The customer's words about the agent's pointer and drawings (share/annotations.ts), per locale
 * (shared/i18n.ts). `{agent}` is the agent's name; `{what}` a short description of an element.
 */

import type { Catalogues, Messages } from "../../shared/i18n.ts";

const en = {
  chip: "{agent} can point and draw on this page.",
  chipOff: "Pointing and drawing are off.",
  turnOff: "Turn off pointer",
  turnOn: "Allow pointer",
  pointing: "{agent} is pointing at something on this page.",
  highlighted: "{agent} highlighted “{what}”.",
  drew: "{agent} drew on this page.",
  region: "Agent's pointer",
};

const de: Messages<typeof en> = {
  chip: "{agent} kann auf dieser Seite zeigen und zeichnen.",
  chipOff: "Zeigen und Zeichnen sind aus.",
  turnOff: "Zeiger ausschalten",
  turnOn: "Zeiger erlauben",
  pointing: "{agent} zeigt auf etwas auf dieser Seite.",
  highlighted: "{agent} hat „{what}“ hervorgehoben.",
  drew: "{agent} hat auf dieser Seite gezeichnet.",
  region: "Zeiger des Mitarbeiters",
};

const fr: Messages<typeof en> = {
  chip: "{agent} peut pointer et dessiner sur cette page.",
  chipOff: "Le pointeur et le dessin sont désactivés.",
  turnOff: "Désactiver le pointeur",
  turnOn: "Autoriser le pointeur",
  pointing: "{agent} montre quelque chose sur cette page.",
  highlighted: "{agent} a mis en évidence « {what} ».",
  drew: "{agent} a dessiné sur cette page.",
  region: "Pointeur du conseiller",
};

const es: Messages<typeof en> = {
  chip: "{agent} puede señalar y dibujar en esta página.",
  chipOff: "El puntero y el dibujo están desactivados.",
  turnOff: "Desactivar puntero",
  turnOn: "Permitir puntero",
  pointing: "{agent} está señalando algo en esta página.",
  highlighted: "{agent} resaltó «{what}».",
  drew: "{agent} dibujó en esta página.",
  region: "Puntero del agente",
};

const ar: Messages<typeof en> = {
  chip: "يمكن لـ {agent} الإشارة والرسم على هذه الصفحة.",
  chipOff: "الإشارة والرسم متوقفان.",
  turnOff: "إيقاف المؤشر",
  turnOn: "السماح بالمؤشر",
  pointing: "يشير {agent} إلى شيء ما على هذه الصفحة.",
  highlighted: "أبرز {agent} «{what}».",
  drew: "رسم {agent} على هذه الصفحة.",
  region: "مؤشر الموظف",
};

export const annotationMessages: Catalogues<typeof en> = { en, de, fr, es, ar };
