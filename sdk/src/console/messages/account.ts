/**
 * The signed-in account's own pages (issue 15, "Brand and language"): signing in (the console's
 * own failures; the server's answers stay its words), setting up two-step sign-in (the
 * authenticator's QR code, the recovery codes) and changing one's password, per
 * locale (shared/i18n.ts). They follow the console's locale (`consoleLocale`, workspace.ts).
 */

import { type Catalogues, type Messages, type Params, translator } from "../../shared/i18n.ts";
import { consoleLocale } from "./workspace.ts";

export const en = {
  mfaTitle: "Set up two-step sign-in",
  mfaIntro:
    "Your organisation requires a second step at sign-in. Scan this code with an authenticator app (Google Authenticator, Microsoft Authenticator, 1Password, …), then enter the 6-digit code it shows.",
  mfaShow: "Show my code",
  mfaQrAlt: "QR code for your authenticator app",
  mfaByHand: "Cannot scan? Enter this key by hand:",
  mfaCode: "Code from the app",
  mfaTurnOn: "Turn on",
  mfaOn: "Two-step sign-in is on.",
  mfaSave: "These recovery codes each work once if you lose your phone. Save them now: they are not shown again.",
  mfaCodes: "Recovery codes",
  mfaCopy: "Copy all codes",
  mfaCopied: "Copied",
  mfaCopyFailed: "Copy failed: select the codes",
  mfaContinue: "I saved them — continue",
  pwButton: "Change password",
  pwTitleForced: "Choose a new password",
  pwTitle: "Change your password",
  pwIntroForced:
    "An admin reset your password. Choose your own before you continue: at least 12 characters (a few unrelated words work well).",
  pwIntro: "At least 12 characters (a few unrelated words work well). Your other sign-ins end.",
  pwGiven: "Password you were given",
  pwCurrent: "Current password",
  pwNew: "New password",
  pwAgain: "New password again",
  pwSubmit: "Change password",
  pwCancel: "Cancel",
  pwDiffer: "The two new passwords differ.",
  signInUnreachable: "The server cannot be reached.",
  ssoNeedOrg: "Type your organisation's id.",
  ssoUnavailable: "That organisation does not sign in through an identity provider here.",
  ssoBusy: "Too many sign-ins were started from here. Wait a few minutes, then try again.",
  ssoFailed: "Sign-in with your organisation failed. Ask your admin if your account is set up.",
  joinNeedCode: "Type the code the customer reads to you.",
};

export type AccountKey = keyof typeof en;
type AccountMessages = Messages<typeof en>;

const de: AccountMessages = {
  mfaTitle: "Zweistufige Anmeldung einrichten",
  mfaIntro:
    "Ihre Organisation verlangt bei der Anmeldung einen zweiten Schritt. Scannen Sie diesen Code mit einer Authenticator-App (Google Authenticator, Microsoft Authenticator, 1Password, …) und geben Sie dann den 6-stelligen Code ein, den sie anzeigt.",
  mfaShow: "Meinen Code anzeigen",
  mfaQrAlt: "QR-Code für Ihre Authenticator-App",
  mfaByHand: "Scannen geht nicht? Geben Sie diesen Schlüssel von Hand ein:",
  mfaCode: "Code aus der App",
  mfaTurnOn: "Einschalten",
  mfaOn: "Die zweistufige Anmeldung ist eingeschaltet.",
  mfaSave:
    "Jeder dieser Wiederherstellungscodes gilt einmal, falls Sie Ihr Telefon verlieren. Speichern Sie sie jetzt: Sie werden nicht noch einmal angezeigt.",
  mfaCodes: "Wiederherstellungscodes",
  mfaCopy: "Alle Codes kopieren",
  mfaCopied: "Kopiert",
  mfaCopyFailed: "Kopieren fehlgeschlagen: Codes markieren",
  mfaContinue: "Gespeichert – weiter",
  pwButton: "Passwort ändern",
  pwTitleForced: "Neues Passwort wählen",
  pwTitle: "Ihr Passwort ändern",
  pwIntroForced:
    "Ihr Passwort wurde von einem Admin zurückgesetzt. Wählen Sie ein eigenes, bevor Sie weitermachen: mindestens 12 Zeichen (ein paar zusammenhanglose Wörter eignen sich gut).",
  pwIntro: "Mindestens 12 Zeichen (ein paar zusammenhanglose Wörter eignen sich gut). Ihre anderen Anmeldungen werden beendet.",
  pwGiven: "Erhaltenes Passwort",
  pwCurrent: "Aktuelles Passwort",
  pwNew: "Neues Passwort",
  pwAgain: "Neues Passwort wiederholen",
  pwSubmit: "Passwort ändern",
  pwCancel: "Abbrechen",
  pwDiffer: "Die beiden neuen Passwörter stimmen nicht überein.",
  signInUnreachable: "Der Server ist nicht erreichbar.",
  ssoNeedOrg: "Geben Sie die Kennung Ihrer Organisation ein.",
  ssoUnavailable: "Diese Organisation meldet sich hier nicht über einen Identitätsanbieter an.",
  ssoBusy: "Von hier wurden zu viele Anmeldungen begonnen. Warten Sie ein paar Minuten und versuchen Sie es dann erneut.",
  ssoFailed: "Die Anmeldung über Ihre Organisation ist fehlgeschlagen. Fragen Sie Ihren Admin, ob Ihr Konto eingerichtet ist.",
  joinNeedCode: "Geben Sie den Code ein, den der Kunde Ihnen vorliest.",
};

const fr: AccountMessages = {
  mfaTitle: "Configurer la connexion en deux étapes",
  mfaIntro:
    "Votre organisation exige une deuxième étape à la connexion. Scannez ce code avec une application d'authentification (Google Authenticator, Microsoft Authenticator, 1Password, …), puis saisissez le code à 6 chiffres qu'elle affiche.",
  mfaShow: "Afficher mon code",
  mfaQrAlt: "Code QR pour votre application d'authentification",
  mfaByHand: "Impossible de scanner ? Saisissez cette clé à la main :",
  mfaCode: "Code de l'application",
  mfaTurnOn: "Activer",
  mfaOn: "La connexion en deux étapes est activée.",
  mfaSave:
    "Chacun de ces codes de secours fonctionne une fois si vous perdez votre téléphone. Enregistrez-les maintenant : ils ne seront plus affichés.",
  mfaCodes: "Codes de secours",
  mfaCopy: "Copier tous les codes",
  mfaCopied: "Copiés",
  mfaCopyFailed: "Échec de la copie : sélectionnez les codes",
  mfaContinue: "Je les ai enregistrés — continuer",
  pwButton: "Changer de mot de passe",
  pwTitleForced: "Choisissez un nouveau mot de passe",
  pwTitle: "Changer votre mot de passe",
  pwIntroForced:
    "Un administrateur a réinitialisé votre mot de passe. Choisissez le vôtre avant de continuer : au moins 12 caractères (quelques mots sans rapport font l'affaire).",
  pwIntro: "Au moins 12 caractères (quelques mots sans rapport font l'affaire). Vos autres connexions prennent fin.",
  pwGiven: "Mot de passe reçu",
  pwCurrent: "Mot de passe actuel",
  pwNew: "Nouveau mot de passe",
  pwAgain: "Confirmer le nouveau mot de passe",
  pwSubmit: "Changer de mot de passe",
  pwCancel: "Annuler",
  pwDiffer: "Les deux nouveaux mots de passe sont différents.",
  signInUnreachable: "Le serveur est injoignable.",
  ssoNeedOrg: "Saisissez l'identifiant de votre organisation.",
  ssoUnavailable: "Cette organisation ne se connecte pas ici par un fournisseur d'identité.",
  ssoBusy: "Trop de connexions ont été lancées depuis ici. Attendez quelques minutes, puis réessayez.",
  ssoFailed: "La connexion par votre organisation a échoué. Demandez à votre administrateur si votre compte est configuré.",
  joinNeedCode: "Saisissez le code que le client vous lit.",
};

const es: AccountMessages = {
  mfaTitle: "Configurar el inicio de sesión en dos pasos",
  mfaIntro:
    "Su organización exige un segundo paso al iniciar sesión. Escanee este código con una aplicación de autenticación (Google Authenticator, Microsoft Authenticator, 1Password, …) y escriba el código de 6 dígitos que muestre.",
  mfaShow: "Mostrar mi código",
  mfaQrAlt: "Código QR para su aplicación de autenticación",
  mfaByHand: "¿No puede escanearlo? Escriba esta clave a mano:",
  mfaCode: "Código de la aplicación",
  mfaTurnOn: "Activar",
  mfaOn: "El inicio de sesión en dos pasos está activado.",
  mfaSave:
    "Cada uno de estos códigos de recuperación sirve una vez si pierde el teléfono. Guárdelos ahora: no se volverán a mostrar.",
  mfaCodes: "Códigos de recuperación",
  mfaCopy: "Copiar todos los códigos",
  mfaCopied: "Copiados",
  mfaCopyFailed: "No se pudo copiar: seleccione los códigos",
  mfaContinue: "Ya los guardé — continuar",
  pwButton: "Cambiar la contraseña",
  pwTitleForced: "Elija una contraseña nueva",
  pwTitle: "Cambiar su contraseña",
  pwIntroForced:
    "Un administrador restableció su contraseña. Elija la suya antes de continuar: al menos 12 caracteres (unas cuantas palabras sin relación funcionan bien).",
  pwIntro: "Al menos 12 caracteres (unas cuantas palabras sin relación funcionan bien). Sus otras sesiones se cierran.",
  pwGiven: "Contraseña recibida",
  pwCurrent: "Contraseña actual",
  pwNew: "Contraseña nueva",
  pwAgain: "Repita la contraseña nueva",
  pwSubmit: "Cambiar la contraseña",
  pwCancel: "Cancelar",
  pwDiffer: "Las dos contraseñas nuevas no coinciden.",
  signInUnreachable: "No se puede contactar con el servidor.",
  ssoNeedOrg: "Escriba el id de su organización.",
  ssoUnavailable: "Esa organización no inicia sesión aquí con un proveedor de identidad.",
  ssoBusy: "Se iniciaron demasiados inicios de sesión desde aquí. Espere unos minutos y vuelva a intentarlo.",
  ssoFailed: "Falló el inicio de sesión con su organización. Pregunte a su administrador si su cuenta está configurada.",
  joinNeedCode: "Escriba el código que el cliente le lee.",
};

const ar: AccountMessages = {
  mfaTitle: "إعداد تسجيل الدخول بخطوتين",
  mfaIntro:
    "تطلب مؤسستك خطوة ثانية عند تسجيل الدخول. امسح هذا الرمز بتطبيق مصادقة (Google Authenticator أو Microsoft Authenticator أو 1Password، …)، ثم أدخل الرمز المكوّن من 6 أرقام الذي يعرضه.",
  mfaShow: "اعرض رمزي",
  mfaQrAlt: "رمز QR لتطبيق المصادقة",
  mfaByHand: "لا يمكنك المسح؟ أدخل هذا المفتاح يدويًا:",
  mfaCode: "الرمز من التطبيق",
  mfaTurnOn: "تفعيل",
  mfaOn: "تسجيل الدخول بخطوتين مفعّل.",
  mfaSave: "يصلح كل رمز من رموز الاسترداد هذه مرة واحدة إذا فقدت هاتفك. احفظها الآن: لن تظهر مرة أخرى.",
  mfaCodes: "رموز الاسترداد",
  mfaCopy: "نسخ كل الرموز",
  mfaCopied: "تم النسخ",
  mfaCopyFailed: "تعذّر النسخ: حدّد الرموز",
  mfaContinue: "حفظتها — متابعة",
  pwButton: "تغيير كلمة المرور",
  pwTitleForced: "اختر كلمة مرور جديدة",
  pwTitle: "تغيير كلمة المرور",
  pwIntroForced:
    "أعاد أحد المسؤولين تعيين كلمة مرورك. اختر كلمة مرور خاصة بك قبل المتابعة: 12 حرفًا على الأقل (بضع كلمات لا رابط بينها تفي بالغرض).",
  pwIntro: "12 حرفًا على الأقل (بضع كلمات لا رابط بينها تفي بالغرض). تنتهي جلسات الدخول الأخرى.",
  pwGiven: "كلمة المرور التي أُعطيت لك",
  pwCurrent: "كلمة المرور الحالية",
  pwNew: "كلمة المرور الجديدة",
  pwAgain: "أعد كتابة كلمة المرور الجديدة",
  pwSubmit: "تغيير كلمة المرور",
  pwCancel: "إلغاء",
  pwDiffer: "كلمتا المرور الجديدتان غير متطابقتين.",
  signInUnreachable: "تعذّر الوصول إلى الخادم.",
  ssoNeedOrg: "اكتب معرّف مؤسستك.",
  ssoUnavailable: "لا تسجّل هذه المؤسسة الدخول هنا عبر مزوّد هوية.",
  ssoBusy: "بدأت محاولات تسجيل دخول كثيرة من هنا. انتظر بضع دقائق ثم حاول مرة أخرى.",
  ssoFailed: "فشل تسجيل الدخول عبر مؤسستك. اسأل المسؤول إن كان حسابك مُعدًّا.",
  joinNeedCode: "اكتب الرمز الذي يقرؤه عليك العميل.",
};

export const accountMessages: Catalogues<typeof en> = { en, de, fr, es, ar };

/** The account pages' message `key` in the console's locale. */
export function accountT(key: AccountKey, params?: Params): string {
  return translator(accountMessages, consoleLocale())(key, params);
}
