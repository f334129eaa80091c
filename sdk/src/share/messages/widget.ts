/**
 * Every string of the customer widget (../ui.ts), in English, German, French, Spanish and Arabic
 * (issue 15, "Brand and language"). The shape and the rules are ../../shared/i18n.ts's: placeholders
 * are `{name}`, inserted as text (../ui.ts renders with textContent only).
 *
 * The end notices' English texts are the SDK's constants (../state.ts, ../../shared/protocol.ts): the
 * session says *why* it ended in English (its tests, start()'s rejection), and `noticeKey` finds
 * the message to show in the customer's language. A test checks each constant is its English text.
 */

import {
  DISTRUST, MISMATCH, RESTARTING, UNREACHABLE, AGENT_ENDED, AGENT_LOST, CODE_EXPIRED, CONNECTION_LOST, IDLE_ENDED,
  LOST, MAX_DURATION_ENDED, SESSION_ENDED, CONSOLE_SILENT, INVALID_POLICY,
} from "../state.ts";
import { NOT_AUTHORISED, NOT_AVAILABLE, SERVER_BUSY, START_FAILED, TOO_MANY_PRACTICE, TOO_MANY_WAITING } from "../../shared/protocol.ts";
import type { Catalogues, Messages } from "../../shared/i18n.ts";

export const en = {
  scrolled: "{agent} scrolled the page",
  clicked: "{agent} clicked “{target}”",
  typed: "{agent} typed in “{target}”",
  withheld: "Part of this page cannot be shown to the agent.",
  widget: "Help from {company}",
  codeLabel: "Your help code",
  codeHint: "Read this code to the support agent. Nothing is shared until you allow it.",
  codeAnnounce: "Your help code is {code}. Read it to the support agent.",
  cancel: "Cancel",
  close: "Close",
  checking: "Checking the code with the agent…",
  consentTitle: "{agent} wants to see this page",
  consentText:
    "{agent} from {company} support will see this page live, with passwords, card numbers and form fields " +
    "hidden (outlined on your screen). They cannot click or type. You can stop at any time.",
  decline: "Decline",
  allow: "Allow",
  theAgent: "the agent",
  anAgent: "An agent",
  agentAndWatcher: "{agent} and {watcher} (supervisor)",
  sharing: "Sharing this page with {agent}",
  paused: "Sharing paused: {agent} cannot see this private page",
  pausedControls: "Sharing paused: this page covers Tandem's buttons, so {agent} sees nothing until you can reach Stop sharing",
  inControl: "{agent} can control this page (Esc to stop)",
  linkReconnecting: "Connection to {agent} interrupted. Reconnecting…",
  reconnectingSelf: "Reconnecting to the help server…",
  reconnectingAgent: "{agent} is reconnecting…",
  agentQuiet: "{agent}'s console has not answered for over a minute. Sharing stops if it stays silent.",
  recording: "Recording",
  stopRecording: "Stop recording",
  takeBack: "Take back control",
  stopSharing: "Stop sharing",
  fullscreenTitle: "Sharing paused while this page is full screen",
  fullscreenText: "{agent} sees nothing until you leave full screen (Esc).",
  leaveFullscreen: "Leave full screen",
  recordTitle: "{agent} asks to record this session",
  recordText:
    "The recording holds what the agent sees, with the same fields hidden. It is encrypted in this browser so " +
    "that only your provider's auditors can play it back, and it is deleted after the provider's retention " +
    "period. You can stop recording at any time; sharing goes on either way.",
  dontRecord: "Don't record",
  allowRecording: "Allow recording",
  recordVerified: "Recording key verified by {site}",
  watchTitle: "{watcher}, a supervisor, asks to watch too",
  watchText:
    "{watcher} would see this page as the agent does, with the same fields hidden, and cannot click or type. " +
    "If you allow it, you read a short code to them. Stop sharing ends it for everyone.",
  refuse: "Refuse",
  watchRegion: "Supervisor code",
  watchCodeLabel: "Code for {watcher}",
  watchCodeHint: "Read this code to {watcher}. They see the page only once it matches.",
  watchCodeAnnounce: "The code for {watcher} is {code}.",
  controlTitle: "{agent} asks to control this page",
  controlText:
    "{agent} will be able to point, scroll, click and type in fields they can see — never in hidden fields or " +
    "on protected buttons. Every action is shown to you. Press Esc or “Take back control” at any time.",
  allowControl: "Allow control",
  endedTitle: "Help session ended",
  endedByYou: "You stopped sharing. {agent} no longer sees this page.",
  endMismatch: MISMATCH,
  endRestarting: RESTARTING,
  endDistrust: DISTRUST,
  endUnreachable: UNREACHABLE,
  endAgent: AGENT_ENDED,
  endAgentLost: AGENT_LOST,
  endConsoleSilent: CONSOLE_SILENT,
  endExpired: CODE_EXPIRED,
  endLost: CONNECTION_LOST,
  endGaveUp: LOST,
  endIdle: IDLE_ENDED,
  endMaxDuration: MAX_DURATION_ENDED,
  endSession: SESSION_ENDED,
  endNotAvailable: NOT_AVAILABLE,
  endNotAuthorised: NOT_AUTHORISED,
  endTooMany: TOO_MANY_WAITING,
  endTooManyPractice: TOO_MANY_PRACTICE,
  endBusy: SERVER_BUSY,
  endStartFailed: START_FAILED,
  endInvalidPolicy: INVALID_POLICY,
} as const;

export type WidgetMessage = keyof typeof en;

const de: Messages<typeof en> = {
  scrolled: "{agent} hat die Seite gescrollt",
  clicked: "{agent} hat auf „{target}“ geklickt",
  typed: "{agent} hat in „{target}“ getippt",
  withheld: "Ein Teil dieser Seite kann dem Support nicht gezeigt werden.",
  widget: "Hilfe von {company}",
  codeLabel: "Ihr Hilfe-Code",
  codeHint: "Lesen Sie diesen Code dem Support vor. Nichts wird geteilt, bevor Sie es erlauben.",
  codeAnnounce: "Ihr Hilfe-Code ist {code}. Lesen Sie ihn dem Support vor.",
  cancel: "Abbrechen",
  close: "Schließen",
  checking: "Der Code wird mit dem Support geprüft …",
  consentTitle: "{agent} möchte diese Seite sehen",
  consentText:
    "{agent} vom Support von {company} sieht diese Seite live; Passwörter, Kartennummern und Formularfelder " +
    "bleiben verborgen (auf Ihrem Bildschirm umrandet). {agent} kann weder klicken noch tippen. Sie können " +
    "jederzeit beenden.",
  decline: "Ablehnen",
  allow: "Erlauben",
  theAgent: "der Support",
  anAgent: "Ein Supportmitarbeiter",
  agentAndWatcher: "{agent} und {watcher} (Teamleitung)",
  sharing: "Diese Seite wird mit {agent} geteilt",
  paused: "Teilen pausiert: {agent} sieht diese private Seite nicht",
  pausedControls: "Teilen pausiert: Diese Seite verdeckt die Schaltflächen von Tandem, daher sieht {agent} nichts, bis Sie „Teilen beenden“ erreichen",
  inControl: "{agent} kann diese Seite steuern (Esc beendet)",
  linkReconnecting: "Verbindung zu {agent} unterbrochen. Wird wiederhergestellt …",
  reconnectingSelf: "Verbindung zum Hilfe-Server wird wiederhergestellt …",
  reconnectingAgent: "{agent} verbindet sich wieder …",
  agentQuiet: "Die Konsole von {agent} antwortet seit über einer Minute nicht. Das Teilen endet, wenn sie weiter schweigt.",
  recording: "Aufnahme",
  stopRecording: "Aufnahme beenden",
  takeBack: "Steuerung zurücknehmen",
  stopSharing: "Teilen beenden",
  fullscreenTitle: "Teilen pausiert, solange diese Seite im Vollbild ist",
  fullscreenText: "{agent} sieht nichts, bis Sie das Vollbild verlassen (Esc).",
  leaveFullscreen: "Vollbild verlassen",
  recordTitle: "{agent} bittet darum, diese Sitzung aufzuzeichnen",
  recordText:
    "Die Aufnahme zeigt, was der Support sieht, mit denselben verborgenen Feldern. Sie wird in diesem Browser " +
    "verschlüsselt, sodass nur die Prüfer Ihres Anbieters sie abspielen können, und nach der Aufbewahrungsfrist " +
    "gelöscht. Sie können die Aufnahme jederzeit beenden; das Teilen geht weiter.",
  dontRecord: "Nicht aufzeichnen",
  allowRecording: "Aufnahme erlauben",
  recordVerified: "Aufnahmeschlüssel von {site} bestätigt",
  watchTitle: "{watcher} aus der Teamleitung möchte ebenfalls zusehen",
  watchText:
    "{watcher} würde diese Seite wie der Support sehen, mit denselben verborgenen Feldern, und kann weder " +
    "klicken noch tippen. Wenn Sie es erlauben, lesen Sie einen kurzen Code vor. „Teilen beenden“ beendet es für alle.",
  refuse: "Ablehnen",
  watchRegion: "Code für die Teamleitung",
  watchCodeLabel: "Code für {watcher}",
  watchCodeHint: "Lesen Sie diesen Code {watcher} vor. Die Seite ist erst sichtbar, wenn er stimmt.",
  watchCodeAnnounce: "Der Code für {watcher} ist {code}.",
  controlTitle: "{agent} bittet darum, diese Seite zu steuern",
  controlText:
    "{agent} kann zeigen, scrollen, klicken und in sichtbare Felder tippen — nie in verborgene Felder oder auf " +
    "geschützte Schaltflächen. Jede Aktion wird Ihnen angezeigt. Drücken Sie jederzeit Esc oder „Steuerung zurücknehmen“.",
  allowControl: "Steuerung erlauben",
  endedTitle: "Hilfesitzung beendet",
  endedByYou: "Sie haben das Teilen beendet. {agent} sieht diese Seite nicht mehr.",
  endMismatch: "Der Code stimmte nicht. Klicken Sie auf „Hilfe“, um einen neuen Code zu erhalten.",
  endRestarting: "Der Hilfe-Server startet neu, daher wurde diese Sitzung beendet. Versuchen Sie es gleich noch einmal.",
  endDistrust: "Die Hilfe wurde zu Ihrer Sicherheit beendet: Der Hilfe-Server hat etwas Unerwartetes gesendet",
  endUnreachable: "Der Hilfe-Server ist nicht erreichbar. Bitte versuchen Sie es erneut.",
  endAgent: "Der Support hat die Sitzung beendet. Es wird nichts mehr geteilt.",
  endAgentLost: "Die Verbindung zum Support ist abgebrochen, daher wurde das Teilen beendet.",
  endConsoleSilent: "Die Konsole des Supports antwortet nicht mehr, daher wurde das Teilen beendet. Es wird nichts mehr geteilt.",
  endExpired: "Ihr Hilfe-Code ist abgelaufen. Klicken Sie auf „Hilfe“, um einen neuen zu erhalten.",
  endGaveUp:
    "Die Verbindung zum Hilfe-Server ist abgebrochen und konnte nicht wiederhergestellt werden, daher ist diese " +
    "Hilfesitzung beendet. Klicken Sie auf „Hilfe“, um neu zu beginnen.",
  endLost: "Die Verbindung ist abgebrochen, daher wurde das Teilen beendet. Klicken Sie auf „Hilfe“, um neu zu beginnen.",
  endIdle: "Die Sitzung wurde nach längerer Inaktivität beendet.",
  endMaxDuration: "Die Sitzung hat ihre Höchstdauer erreicht und wurde beendet.",
  endSession: "Die Hilfesitzung wurde beendet. Es wird nichts mehr geteilt.",
  endNotAvailable: "Hilfe ist auf dieser Website nicht verfügbar.",
  endNotAuthorised: "Hilfe konnte auf dieser Seite nicht starten. Laden Sie die Seite neu und versuchen Sie es erneut.",
  endTooMany: "Gerade warten zu viele Hilfeanfragen. Bitte versuchen Sie es in ein paar Minuten erneut.",
  endTooManyPractice: "Sie haben zu viele Übungssitzungen offen. Beenden oder schließen Sie eine, oder versuchen Sie es in ein paar Minuten erneut.",
  endBusy: "Alle Mitarbeitenden sind gerade beschäftigt. Bitte versuchen Sie es in ein paar Minuten erneut.",
  endStartFailed: "Hilfe konnte nicht starten. Bitte versuchen Sie es erneut.",
  endInvalidPolicy: "Hilfe ist nicht verfügbar: Die Datenschutzregeln des Hilfe-Servers sind ungültig, daher wurde nichts geteilt.",
};

const fr: Messages<typeof en> = {
  scrolled: "{agent} a fait défiler la page",
  clicked: "{agent} a cliqué sur « {target} »",
  typed: "{agent} a saisi dans « {target} »",
  withheld: "Une partie de cette page ne peut pas être montrée à l’agent.",
  widget: "Aide de {company}",
  codeLabel: "Votre code d’aide",
  codeHint: "Lisez ce code à l’agent du support. Rien n’est partagé avant votre accord.",
  codeAnnounce: "Votre code d’aide est {code}. Lisez-le à l’agent du support.",
  cancel: "Annuler",
  close: "Fermer",
  checking: "Vérification du code avec l’agent…",
  consentTitle: "{agent} souhaite voir cette page",
  consentText:
    "{agent}, du support de {company}, verra cette page en direct ; mots de passe, numéros de carte et champs " +
    "de formulaire restent masqués (entourés sur votre écran). {agent} ne peut ni cliquer ni saisir. Vous " +
    "pouvez arrêter à tout moment.",
  decline: "Refuser",
  allow: "Autoriser",
  theAgent: "l’agent",
  anAgent: "Un agent",
  agentAndWatcher: "{agent} et {watcher} (superviseur)",
  sharing: "Cette page est partagée avec {agent}",
  paused: "Partage en pause : {agent} ne voit pas cette page privée",
  pausedControls: "Partage en pause : cette page masque les boutons de Tandem, {agent} ne voit donc rien tant que vous ne pouvez pas atteindre « Arrêter le partage »",
  inControl: "{agent} peut contrôler cette page (Échap pour arrêter)",
  linkReconnecting: "Connexion avec {agent} interrompue. Reconnexion…",
  reconnectingSelf: "Reconnexion au serveur d'aide…",
  reconnectingAgent: "{agent} se reconnecte…",
  agentQuiet: "La console de {agent} ne répond plus depuis plus d’une minute. Le partage s’arrêtera si elle reste muette.",
  recording: "Enregistrement",
  stopRecording: "Arrêter l’enregistrement",
  takeBack: "Reprendre le contrôle",
  stopSharing: "Arrêter le partage",
  fullscreenTitle: "Partage en pause tant que cette page est en plein écran",
  fullscreenText: "{agent} ne voit rien tant que vous ne quittez pas le plein écran (Échap).",
  leaveFullscreen: "Quitter le plein écran",
  recordTitle: "{agent} demande à enregistrer cette session",
  recordText:
    "L’enregistrement contient ce que voit l’agent, avec les mêmes champs masqués. Il est chiffré dans ce " +
    "navigateur pour que seuls les auditeurs de votre fournisseur puissent le lire, et supprimé après la durée " +
    "de conservation. Vous pouvez arrêter l’enregistrement à tout moment ; le partage continue.",
  dontRecord: "Ne pas enregistrer",
  allowRecording: "Autoriser l’enregistrement",
  recordVerified: "Clé d’enregistrement vérifiée par {site}",
  watchTitle: "{watcher}, superviseur, demande à regarder aussi",
  watchText:
    "{watcher} verrait cette page comme l’agent, avec les mêmes champs masqués, sans pouvoir cliquer ni " +
    "saisir. Si vous acceptez, vous lui lisez un code court. « Arrêter le partage » arrête tout pour tous.",
  refuse: "Refuser",
  watchRegion: "Code du superviseur",
  watchCodeLabel: "Code pour {watcher}",
  watchCodeHint: "Lisez ce code à {watcher}. La page n’est visible que s’il correspond.",
  watchCodeAnnounce: "Le code pour {watcher} est {code}.",
  controlTitle: "{agent} demande à contrôler cette page",
  controlText:
    "{agent} pourra pointer, faire défiler, cliquer et saisir dans les champs visibles — jamais dans les champs " +
    "masqués ni sur les boutons protégés. Chaque action vous est montrée. Appuyez sur Échap ou « Reprendre le " +
    "contrôle » à tout moment.",
  allowControl: "Autoriser le contrôle",
  endedTitle: "Session d’aide terminée",
  endedByYou: "Vous avez arrêté le partage. {agent} ne voit plus cette page.",
  endMismatch: "Le code ne correspondait pas. Cliquez sur « Aide » pour obtenir un nouveau code.",
  endRestarting: "Le serveur d’aide redémarre, la session est donc terminée. Réessayez dans un instant.",
  endDistrust: "L’aide a été arrêtée pour votre sécurité : le serveur d’aide a envoyé quelque chose d’inattendu",
  endUnreachable: "Impossible de joindre le serveur d’aide. Veuillez réessayer.",
  endAgent: "L’agent a terminé la session. Plus rien n’est partagé.",
  endAgentLost: "La connexion de l’agent a été perdue, le partage est donc arrêté.",
  endConsoleSilent: "La console de l’agent ne répond plus, le partage est donc arrêté. Plus rien n’est partagé.",
  endExpired: "Votre code d’aide a expiré. Cliquez sur « Aide » pour en obtenir un nouveau.",
  endGaveUp:
    "La connexion au serveur d’aide a été perdue et n’a pas pu être rétablie, cette session d’aide est donc " +
    "terminée. Cliquez sur « Aide » pour recommencer.",
  endLost: "La connexion a été perdue, le partage est donc arrêté. Cliquez sur « Aide » pour recommencer.",
  endIdle: "La session s’est terminée après une longue inactivité.",
  endMaxDuration: "La session a atteint sa durée maximale et s’est terminée.",
  endSession: "La session d’aide est terminée. Plus rien n’est partagé.",
  endNotAvailable: "L’aide n’est pas disponible sur ce site.",
  endNotAuthorised: "L’aide n’a pas pu démarrer sur cette page. Rechargez la page et réessayez.",
  endTooMany: "Trop de demandes d’aide sont en attente. Veuillez réessayer dans quelques minutes.",
  endTooManyPractice: "Vous avez trop de sessions d’entraînement ouvertes. Terminez-en ou fermez-en une, ou réessayez dans quelques minutes.",
  endBusy: "Tous les agents sont occupés. Veuillez réessayer dans quelques minutes.",
  endStartFailed: "L’aide n’a pas pu démarrer. Veuillez réessayer.",
  endInvalidPolicy: "L’aide n’est pas disponible : les règles de confidentialité du serveur d’aide ne sont pas valides, rien n’a donc été partagé.",
};

const es: Messages<typeof en> = {
  scrolled: "{agent} desplazó la página",
  clicked: "{agent} hizo clic en «{target}»",
  typed: "{agent} escribió en «{target}»",
  withheld: "Parte de esta página no se puede mostrar al agente.",
  widget: "Ayuda de {company}",
  codeLabel: "Su código de ayuda",
  codeHint: "Lea este código al agente de soporte. No se comparte nada hasta que usted lo permita.",
  codeAnnounce: "Su código de ayuda es {code}. Léaselo al agente de soporte.",
  cancel: "Cancelar",
  close: "Cerrar",
  checking: "Comprobando el código con el agente…",
  consentTitle: "{agent} quiere ver esta página",
  consentText:
    "{agent}, del soporte de {company}, verá esta página en directo; las contraseñas, los números de tarjeta " +
    "y los campos de formulario quedan ocultos (marcados en su pantalla). No puede hacer clic ni escribir. " +
    "Puede detenerlo en cualquier momento.",
  decline: "Rechazar",
  allow: "Permitir",
  theAgent: "el agente",
  anAgent: "Un agente",
  agentAndWatcher: "{agent} y {watcher} (supervisor)",
  sharing: "Compartiendo esta página con {agent}",
  paused: "Pausado: {agent} no puede ver esta página privada",
  pausedControls: "Pausado: esta página tapa los botones de Tandem, así que {agent} no ve nada hasta que pueda llegar a «Dejar de compartir»",
  inControl: "{agent} puede controlar esta página (Esc para detener)",
  linkReconnecting: "Conexión con {agent} interrumpida. Reconectando…",
  reconnectingSelf: "Reconectando con el servidor de ayuda…",
  reconnectingAgent: "{agent} se está reconectando…",
  agentQuiet: "La consola de {agent} no responde desde hace más de un minuto. Se dejará de compartir si sigue sin responder.",
  recording: "Grabando",
  stopRecording: "Detener grabación",
  takeBack: "Recuperar el control",
  stopSharing: "Dejar de compartir",
  fullscreenTitle: "Compartir en pausa mientras esta página esté a pantalla completa",
  fullscreenText: "{agent} no ve nada hasta que salga de la pantalla completa (Esc).",
  leaveFullscreen: "Salir de pantalla completa",
  recordTitle: "{agent} pide grabar esta sesión",
  recordText:
    "La grabación contiene lo que ve el agente, con los mismos campos ocultos. Se cifra en este navegador para " +
    "que solo los auditores de su proveedor puedan reproducirla, y se borra tras el periodo de conservación. " +
    "Puede detener la grabación en cualquier momento; se sigue compartiendo igualmente.",
  dontRecord: "No grabar",
  allowRecording: "Permitir grabación",
  recordVerified: "Clave de grabación verificada por {site}",
  watchTitle: "{watcher}, supervisor, pide mirar también",
  watchText:
    "{watcher} vería esta página como el agente, con los mismos campos ocultos, y no puede hacer clic ni " +
    "escribir. Si lo permite, le lee un código corto. «Dejar de compartir» termina para todos.",
  refuse: "Rechazar",
  watchRegion: "Código del supervisor",
  watchCodeLabel: "Código para {watcher}",
  watchCodeHint: "Lea este código a {watcher}. Solo verá la página cuando coincida.",
  watchCodeAnnounce: "El código para {watcher} es {code}.",
  controlTitle: "{agent} pide controlar esta página",
  controlText:
    "{agent} podrá señalar, desplazarse, hacer clic y escribir en los campos que ve — nunca en campos ocultos " +
    "ni en botones protegidos. Verá cada acción. Pulse Esc o «Recuperar el control» en cualquier momento.",
  allowControl: "Permitir control",
  endedTitle: "Sesión de ayuda terminada",
  endedByYou: "Ha dejado de compartir. {agent} ya no ve esta página.",
  endMismatch: "El código no coincidía. Pulse «Ayuda» para obtener un código nuevo.",
  endRestarting: "El servidor de ayuda se está reiniciando, así que la sesión ha terminado. Inténtelo de nuevo en un momento.",
  endDistrust: "La ayuda se detuvo por su seguridad: el servidor de ayuda envió algo inesperado",
  endUnreachable: "No se pudo conectar con el servidor de ayuda. Inténtelo de nuevo.",
  endAgent: "El agente terminó la sesión. Ya no se comparte nada.",
  endAgentLost: "Se perdió la conexión del agente, así que se dejó de compartir.",
  endConsoleSilent: "La consola del agente dejó de responder, así que se dejó de compartir. Ya no se comparte nada.",
  endExpired: "Su código de ayuda caducó. Pulse «Ayuda» para obtener uno nuevo.",
  endGaveUp:
    "Se perdió la conexión con el servidor de ayuda y no se pudo restablecer, así que esta sesión de ayuda ha " +
    "terminado. Pulse «Ayuda» para empezar de nuevo.",
  endLost: "Se perdió la conexión, así que se dejó de compartir. Pulse «Ayuda» para empezar de nuevo.",
  endIdle: "La sesión terminó tras un largo periodo sin actividad.",
  endMaxDuration: "La sesión alcanzó su duración máxima y terminó.",
  endSession: "La sesión de ayuda ha terminado. Ya no se comparte nada.",
  endNotAvailable: "La ayuda no está disponible en este sitio.",
  endNotAuthorised: "La ayuda no pudo iniciarse en esta página. Recargue la página e inténtelo de nuevo.",
  endTooMany: "Hay demasiadas solicitudes de ayuda en espera. Inténtelo de nuevo en unos minutos.",
  endTooManyPractice: "Tiene demasiadas sesiones de práctica abiertas. Termine o cierre una, o inténtelo de nuevo en unos minutos.",
  endBusy: "Todos los agentes están ocupados. Inténtelo de nuevo en unos minutos.",
  endStartFailed: "La ayuda no pudo iniciarse. Inténtelo de nuevo.",
  endInvalidPolicy: "La ayuda no está disponible: las reglas de privacidad del servidor de ayuda no son válidas, así que no se compartió nada.",
};

const ar: Messages<typeof en> = {
  scrolled: "قام {agent} بتمرير الصفحة",
  clicked: "نقر {agent} على «{target}»",
  typed: "كتب {agent} في «{target}»",
  withheld: "لا يمكن عرض جزء من هذه الصفحة للموظف.",
  widget: "مساعدة من {company}",
  codeLabel: "رمز المساعدة الخاص بك",
  codeHint: "اقرأ هذا الرمز لموظف الدعم. لا تتم مشاركة أي شيء قبل أن تسمح بذلك.",
  codeAnnounce: "رمز المساعدة الخاص بك هو {code}. اقرأه لموظف الدعم.",
  cancel: "إلغاء",
  close: "إغلاق",
  checking: "جارٍ التحقق من الرمز مع الموظف…",
  consentTitle: "{agent} يريد رؤية هذه الصفحة",
  consentText:
    "سيرى {agent} من فريق دعم {company} هذه الصفحة مباشرةً، مع إخفاء كلمات المرور وأرقام البطاقات وحقول " +
    "النماذج (محددة على شاشتك). لا يمكنه النقر أو الكتابة. يمكنك الإيقاف في أي وقت.",
  decline: "رفض",
  allow: "سماح",
  theAgent: "الموظف",
  anAgent: "موظف",
  agentAndWatcher: "{agent} و{watcher} (مشرف)",
  sharing: "تتم مشاركة هذه الصفحة مع {agent}",
  paused: "المشاركة متوقفة مؤقتًا: لا يرى {agent} هذه الصفحة الخاصة",
  pausedControls: "المشاركة متوقفة مؤقتًا: هذه الصفحة تغطي أزرار Tandem، لذا لا يرى {agent} شيئًا حتى تتمكن من الوصول إلى «إيقاف المشاركة»",
  inControl: "يمكن لـ{agent} التحكم في هذه الصفحة (Esc للإيقاف)",
  linkReconnecting: "انقطع الاتصال بـ {agent}. جارٍ إعادة الاتصال…",
  reconnectingSelf: "جارٍ إعادة الاتصال بخادم المساعدة…",
  reconnectingAgent: "{agent} يعيد الاتصال…",
  agentQuiet: "لم تستجب وحدة تحكم {agent} منذ أكثر من دقيقة. ستتوقف المشاركة إذا استمر ذلك.",
  recording: "تسجيل",
  stopRecording: "إيقاف التسجيل",
  takeBack: "استعادة التحكم",
  stopSharing: "إيقاف المشاركة",
  fullscreenTitle: "المشاركة متوقفة مؤقتًا ما دامت هذه الصفحة في وضع ملء الشاشة",
  fullscreenText: "لا يرى {agent} شيئًا حتى تخرج من وضع ملء الشاشة (Esc).",
  leaveFullscreen: "الخروج من ملء الشاشة",
  recordTitle: "{agent} يطلب تسجيل هذه الجلسة",
  recordText:
    "يحتوي التسجيل على ما يراه الموظف، مع إخفاء الحقول نفسها. يُشفَّر في هذا المتصفح بحيث لا يمكن تشغيله إلا " +
    "لمدققي مزودك، ويُحذف بعد مدة الاحتفاظ. يمكنك إيقاف التسجيل في أي وقت؛ وتستمر المشاركة في الحالتين.",
  dontRecord: "عدم التسجيل",
  allowRecording: "السماح بالتسجيل",
  recordVerified: "تم التحقق من مفتاح التسجيل بواسطة {site}",
  watchTitle: "{watcher}، وهو مشرف، يطلب المشاهدة أيضًا",
  watchText:
    "سيرى {watcher} هذه الصفحة كما يراها الموظف، مع إخفاء الحقول نفسها، ولا يمكنه النقر أو الكتابة. إذا سمحت " +
    "بذلك، فستقرأ له رمزًا قصيرًا. «إيقاف المشاركة» ينهيها للجميع.",
  refuse: "رفض",
  watchRegion: "رمز المشرف",
  watchCodeLabel: "رمز لـ{watcher}",
  watchCodeHint: "اقرأ هذا الرمز لـ{watcher}. لن يرى الصفحة إلا عند تطابقه.",
  watchCodeAnnounce: "رمز {watcher} هو {code}.",
  controlTitle: "{agent} يطلب التحكم في هذه الصفحة",
  controlText:
    "سيتمكن {agent} من الإشارة والتمرير والنقر والكتابة في الحقول التي يراها — وليس أبدًا في الحقول المخفية أو " +
    "على الأزرار المحمية. تُعرض عليك كل خطوة. اضغط Esc أو «استعادة التحكم» في أي وقت.",
  allowControl: "السماح بالتحكم",
  endedTitle: "انتهت جلسة المساعدة",
  endedByYou: "لقد أوقفت المشاركة. لم يعد {agent} يرى هذه الصفحة.",
  endMismatch: "الرمز غير مطابق. انقر «مساعدة» للحصول على رمز جديد.",
  endRestarting: "يُعاد تشغيل خادم المساعدة، لذا انتهت هذه الجلسة. حاول مرة أخرى بعد قليل.",
  endDistrust: "أُوقفت المساعدة حفاظًا على سلامتك: أرسل خادم المساعدة شيئًا غير متوقع",
  endUnreachable: "تعذر الوصول إلى خادم المساعدة. يرجى المحاولة مرة أخرى.",
  endAgent: "أنهى الموظف الجلسة. لم تعد هناك أي مشاركة.",
  endAgentLost: "انقطع اتصال الموظف، لذا توقفت المشاركة.",
  endConsoleSilent: "توقفت وحدة تحكم الموظف عن الاستجابة، لذا توقفت المشاركة. لم تعد تتم مشاركة أي شيء.",
  endExpired: "انتهت صلاحية رمز المساعدة. انقر «مساعدة» للحصول على رمز جديد.",
  endGaveUp: "انقطع الاتصال بخادم المساعدة وتعذّرت استعادته، لذا انتهت جلسة المساعدة هذه. انقر «مساعدة» للبدء من جديد.",
  endLost: "انقطع الاتصال، لذا توقفت المشاركة. انقر «مساعدة» للبدء من جديد.",
  endIdle: "انتهت الجلسة بعد فترة طويلة دون نشاط.",
  endMaxDuration: "بلغت الجلسة مدتها القصوى وانتهت.",
  endSession: "انتهت جلسة المساعدة. لم تعد هناك أي مشاركة.",
  endNotAvailable: "المساعدة غير متاحة على هذا الموقع.",
  endNotAuthorised: "تعذر بدء المساعدة في هذه الصفحة. أعد تحميل الصفحة وحاول مرة أخرى.",
  endTooMany: "هناك طلبات مساعدة كثيرة في الانتظار الآن. يرجى المحاولة بعد بضع دقائق.",
  endTooManyPractice: "لديك جلسات تدريب مفتوحة كثيرة. أنهِ إحداها أو أغلقها، أو حاول بعد بضع دقائق.",
  endBusy: "جميع الموظفين مشغولون الآن. يرجى المحاولة بعد بضع دقائق.",
  endStartFailed: "تعذر بدء المساعدة. يرجى المحاولة مرة أخرى.",
  endInvalidPolicy: "المساعدة غير متاحة: قواعد الخصوصية لدى خادم المساعدة غير صالحة، لذلك لم تتم مشاركة أي شيء.",
};

export const messages: Catalogues<typeof en> = { en, de, fr, es, ar };

/** The catalogue key of a notice the session ended with (its English text), or null. */
export function noticeKey(notice: string): WidgetMessage | null {
  for (const [key, text] of Object.entries(en) as [WidgetMessage, string][]) {
    // These two say what went wrong after their words: the widget shows their words only.
    const prefix = key === "endDistrust" || key === "endInvalidPolicy";
    if (key.startsWith("end") && (notice === text || (prefix && notice.startsWith(text)))) return key;
  }
  return null;
}
