/**
 * Recordings in the console. The auditor opens the organisation's recording key file with its
 * passphrase (in this page's memory only: never uploaded, never stored), then plays a
 * recording: the server sends ciphertext (each play is audited) and it is decrypted here.
 * The admin creates the key pair here: the private half goes into a passphrase-protected file
 * for the auditors, only the public half to the server.
 */

import { neutralizeEvent } from "./assets.ts";
import { Replayer } from "rrweb";
import { ChannelError } from "../shared/e2e/channel.ts";
import {
  MIN_PASSPHRASE_LENGTH, RecordingError, newKeyFile, openKeyFile, openRecording, type RecordingKey,
} from "../shared/e2e/recording.ts";
import type { Org, Recording, RecordingKey as RecordingKeyBody } from "../generated/rest.ts";
import { api, el, field, statusLine, table } from "./office.ts";
import { relay, relayFetch } from "./relay.ts";

const when = (seconds: number) => new Date(seconds * 1000).toISOString().replace("T", " ").slice(0, 19);

function duration(r: Recording): string {
  if (r.ended_at === null) return "recording…";
  const s = Math.round(r.ended_at - r.started_at);
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
}

function saveFile(name: string, data: BlobPart, type: string): void {
  const url = URL.createObjectURL(new Blob([data], { type }));
  const link = el("a");
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** The auditor's recordings: unlock the key, list, play, export. */
export function recordingsPanel(root: HTMLElement): void {
  let key: RecordingKey | null = null;
  let replayer: Replayer | null = null;
  const [status, say] = statusLine();
  const list = el("div");
  const player = el("section", "", "mirror player");
  player.setAttribute("aria-label", "Recording playback");
  // Controls: play/pause and a position slider (seconds into the recording).
  const controls = el("div", "", "player-controls");
  controls.hidden = true;
  const toggle = el("button", "Pause");
  toggle.type = "button";
  const position = el("input");
  position.type = "range";
  position.min = "0";
  position.step = "0.1";
  position.setAttribute("aria-label", "Position in the recording (seconds)");
  const clock = el("span", "", "muted");
  controls.append(toggle, position, clock);
  let ticker: ReturnType<typeof setInterval> | undefined;
  const showPosition = () => {
    if (!replayer) return;
    const seconds = replayer.getCurrentTime() / 1000;
    position.value = String(seconds);
    clock.textContent = `${seconds.toFixed(1)} s of ${position.max} s`;
  };
  toggle.addEventListener("click", () => {
    if (!replayer) return;
    if (toggle.textContent === "Pause") {
      replayer.pause();
      toggle.textContent = "Play";
    } else {
      replayer.play(replayer.getCurrentTime());
      toggle.textContent = "Pause";
    }
  });
  position.addEventListener("input", () => {
    if (!replayer) return;
    const at = Number(position.value) * 1000;
    if (toggle.textContent === "Pause") replayer.play(at);
    else replayer.pause(at);
    showPosition();
  });

  const unlock = el("form", "", "office-form");
  const file = field(unlock, "Recording key file", el("input"));
  file.type = "file";
  file.accept = ".json,application/json";
  const passphrase = field(unlock, "Key passphrase", el("input"));
  passphrase.type = "password";
  passphrase.autocomplete = "off";
  const open = el("button", "Unlock key");
  open.type = "submit";
  unlock.append(open);
  unlock.addEventListener("submit", (event) => {
    event.preventDefault();
    const chosen = file.files?.[0];
    if (!chosen) return say("Choose the recording key file your admin gave you.");
    say("Opening the key…", true);
    chosen.text()
      .then((text) => openKeyFile(text, passphrase.value))
      .then((opened) => {
        key?.privateKey.fill(0);
        key = opened;
        passphrase.value = "";
        say(`Key ${opened.keyId} unlocked for this page. It is not stored anywhere.`, true);
      })
      .catch((error: Error) => say(error.message))
      .finally(() => {
        passphrase.value = "";
      });
  });

  const stopPlayer = () => {
    try {
      replayer?.pause();
      replayer?.destroy();
    } catch {
      // a replayer that never rendered may throw; the DOM is cleared below
    }
    replayer = null;
    clearInterval(ticker);
    controls.hidden = true;
    player.replaceChildren();
    player.style.height = "";
  };

  const play = async (r: Recording) => {
    if (!key) return say("Unlock the recording key first.");
    stopPlayer();
    player.setAttribute("aria-label", "Recording playback");
    say("Fetching the recording (this playback is recorded in the audit trail)…", true);
    try {
      const response = await relayFetch(`/api/recordings/${encodeURIComponent(r.recording_id)}/content`);
      if (!response.ok) throw new RecordingError(`The server refused: ${response.status}`);
      // The whole recording is checked before anything of it is shown (docs/recordings.md).
      // An interrupted recording (a crash, storage failing) plays up to where it stopped, labelled
      // incomplete (issue 13); everything else about it is checked as for any recording.
      const { events, skipped, start, end, header } = await openRecording(
        new Uint8Array(await response.arrayBuffer()), key, { partial: true },
      );
      if (events.length < 2) return say("This recording holds no page yet.");
      events.forEach(neutralizeEvent); // issue 14, item 7: the player fetches nothing either
      const replayerEvents = events as ConstructorParameters<typeof Replayer>[0];
      replayer = new Replayer(replayerEvents, {
        root: player, mouseTail: false, UNSAFE_replayCanvas: false, showWarning: false,
      });
      replayer.iframe.setAttribute("title", `Recording ${r.recording_id}`);
      replayer.on("resize", (dimension) => {
        const { width, height } = dimension as { width: number; height: number };
        const scale = Math.min(1, player.clientWidth / width);
        if (replayer?.wrapper) replayer.wrapper.style.transform = `scale(${scale})`;
        player.style.height = `${Math.ceil(height * scale)}px`;
      });
      replayer.on("finish", () => {
        toggle.textContent = "Play";
      });
      replayer.play();
      position.max = (replayer.getMetaData().totalTime / 1000).toFixed(1);
      toggle.textContent = "Pause";
      controls.hidden = false;
      ticker = setInterval(showPosition, 250);
      const skippedNote = skipped ? ` (${skipped} frames from outside the consent skipped)` : "";
      if (end) say(`Playing ${events.length} events, recorded on ${start.origin} with ${start.agent}, complete and unedited${skippedNote}.`, true);
      else {
        say(
          `INCOMPLETE RECORDING: it stops where it was cut short (the server says: ${header.end_reason ?? "still running"}). ` +
            `Playing the ${events.length} events saved until then, recorded on ${start.origin} with ${start.agent}, unedited up to that point${skippedNote}.`,
        );
        player.setAttribute("aria-label", "Recording playback (incomplete: cut short)");
      }
    } catch (error) {
      stopPlayer();
      if (error instanceof ChannelError) say(`The recording failed its integrity check: ${error.message}.`);
      else say((error as Error).message);
    }
  };

  const render = async () => {
    const recordings = await api<Recording[]>("GET", "/api/recordings?limit=200");
    list.replaceChildren(recordings.length ? table(
      ["started", "length", "site", "agent", "frames", "ended because", ""],
      recordings.map((r) => {
        const actions = el("span");
        const playButton = el("button", "Play");
        playButton.setAttribute("aria-label", `Play recording ${r.recording_id}`);
        playButton.addEventListener("click", () => void play(r));
        const exportLink = el("a", "Export");
        exportLink.href = `${relay().base}/api/recordings/${encodeURIComponent(r.recording_id)}/export`;
        exportLink.setAttribute("download", "");
        exportLink.setAttribute("aria-label", `Export recording ${r.recording_id}`);
        actions.append(playButton, " ", exportLink);
        return [when(r.started_at), duration(r), r.site_id, r.agent, String(r.frames), r.end_reason ?? "", actions];
      }),
    ) : el("p", "No recordings yet.", "muted"));
  };

  root.append(
    el("h1", "Recordings"),
    el("p", "Recordings are encrypted in the customer's browser for your organisation's recording key; the server cannot read them. Every playback and export is recorded in the audit trail.", "muted"),
    unlock, status, list, controls, player,
  );
  render().catch((error: Error) => say(error.message));
}

/** The admin's recording key: create one (file for the auditors) or remove it. */
export function recordingKeyPanel(root: HTMLElement): void {
  const [status, say] = statusLine();
  const current = el("p");
  // The key id the site's own pages must pin: the customer's browser wraps for no other key.
  const pin = el("form", "", "office-form");
  pin.addEventListener("submit", (event) => event.preventDefault());
  const pinId = field(pin, "Key id to pin on your site", el("input"));
  pinId.readOnly = true;
  const copy = el("button", "Copy key id");
  copy.type = "button";
  copy.addEventListener("click", () => {
    pinId.select();
    navigator.clipboard?.writeText(pinId.value).then(() => say("Key id copied.", true), () => undefined);
  });
  const pinHelp = el("p", "", "muted");
  pin.append(copy, pinHelp);
  const remove = el("button", "Remove recording key");
  const form = el("form", "", "office-form");
  const first = field(form, "New key passphrase", el("input"));
  const second = field(form, "Passphrase again", el("input"));
  for (const input of [first, second]) {
    input.type = "password";
    input.autocomplete = "new-password";
  }
  const create = el("button", "Create recording key");
  create.type = "submit";
  form.append(create);

  const render = async () => {
    const org = await api<Org>("GET", "/api/org");
    current.textContent = org.recording_key
      ? `Sessions can be recorded (with the customer's consent) under key ${org.recording_key.key_id}.`
      : "No recording key: sessions cannot be recorded.";
    remove.hidden = !org.recording_key;
    pin.hidden = !org.recording_key;
    pinId.value = org.recording_key?.key_id ?? "";
    pinHelp.textContent = org.recording_key
      ? `Your site's pages must pin this key, or customers' browsers refuse to record: Tandem.start({ recordingKeys: ["${org.recording_key.key_id}"] }), ` +
        `or "recording_keys": ["${org.recording_key.key_id}"] in the page's tandem-policy tag (docs/recordings.md).`
      : "";
    return org;
  };

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (first.value !== second.value) return say("The passphrases differ.");
    if (first.value.length < MIN_PASSPHRASE_LENGTH) {
      return say(`Use a passphrase of at least ${MIN_PASSPHRASE_LENGTH} characters.`);
    }
    const passphrase = first.value;
    form.reset();
    say("Creating the key…", true);
    render()
      .then((org) => newKeyFile(org.org_id, passphrase))
      .then(async (keyFile) => {
        saveFile(`tandem-recording-key-${keyFile.key_id}.json`, JSON.stringify(keyFile, null, 2), "application/json");
        await api("PUT", "/api/org/recording-key", { public_key: keyFile.public_key } satisfies RecordingKeyBody);
        say(`Key ${keyFile.key_id} is in use. Give the downloaded file and its passphrase to your auditors: without both, no one can play recordings made under it. Pin the key id on your site (below).`, true);
        return render();
      })
      .catch((error: Error) => say(error.message));
  });
  remove.addEventListener("click", () => {
    api("DELETE", "/api/org/recording-key")
      .then(() => {
        say("Recording key removed: new recordings cannot start. Existing ones stay readable with their key file.", true);
        return render();
      })
      .catch((error: Error) => say(error.message));
  });

  // Erasure (GDPR): admins list recordings and erase ended ones; they cannot play them.
  const recordings = el("div");
  const listRecordings = async () => {
    const found = await api<Recording[]>("GET", "/api/recordings?limit=200");
    recordings.replaceChildren(found.length ? table(
      ["started", "length", "site", "agent", ""],
      found.map((r) => {
        const erase = el("button", "Erase");
        erase.setAttribute("aria-label", `Erase recording ${r.recording_id}`);
        erase.disabled = r.ended_at === null;
        erase.addEventListener("click", () => {
          if (!confirm("Erase this recording for good? This cannot be undone.")) return;
          api("DELETE", `/api/recordings/${encodeURIComponent(r.recording_id)}`)
            .then(() => {
              say(`Recording ${r.recording_id} erased.`, true);
              return listRecordings();
            })
            .catch((error: Error) => say(error.message));
        });
        return [when(r.started_at), duration(r), r.site_id, r.agent, erase];
      }),
    ) : el("p", "No recordings.", "muted"));
  };

  root.append(el("h2", "Recording key"), current, pin, form, remove, status, el("h2", "Recordings (erasure)"), recordings);
  render().catch((error: Error) => say(error.message));
  listRecordings().catch((error: Error) => say(error.message));
}
