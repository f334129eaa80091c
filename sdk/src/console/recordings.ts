/**
 * Recordings in the console. The auditor opens the organisation's recording key file with its
 * passphrase (in this page's memory only: never uploaded, never stored), then plays a
 * recording: the server sends ciphertext (each play is audited) and it is decrypted here.
 * The admin creates the key pair here: the private half goes into a passphrase-protected file
 * for the auditors, only the public half to the server.
 */

import { AssetStore, confineMirror } from "./assets.ts";
import { playableEvents } from "./playback.ts";
import { Replayer } from "rrweb";
import { ChannelError } from "../shared/e2e/channel.ts";
import {
  MIN_PASSPHRASE_LENGTH, RecordingError, newKeyFile, openKeyFile, openRecording, type RecordingKey,
} from "../shared/e2e/recording.ts";
import type { Org, Recording, RecordingKey as RecordingKeyBody } from "../generated/rest.ts";
import { humanLabel } from "./messages/office.ts";
import { MAX_NAME, plainLine } from "../shared/names.ts";
import { type OfficeT, api, copyButton, el, field, listView, saveFile, statusLine, table, when } from "./office.ts";
import { relay, relayFetch } from "./relay.ts";

function duration(r: Recording, t: OfficeT): string {
  if (r.ended_at === null) return t("recordings.running");
  const s = Math.round(r.ended_at - r.started_at);
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
}

/** The auditor's recordings: unlock the key, list, play, export. */
export function recordingsPanel(root: HTMLElement, t: OfficeT): void {
  let key: RecordingKey | null = null;
  let replayer: Replayer | null = null;
  const playerAssets = new AssetStore();
  const [status, say] = statusLine();
  const list = el("div");
  const player = el("section", "", "mirror player");
  player.setAttribute("aria-label", t("rec.playback"));
  // Controls: play/pause and a position slider (seconds into the recording).
  const controls = el("div", "", "player-controls");
  controls.hidden = true;
  const toggle = el("button", t("rec.pause"));
  toggle.type = "button";
  let playing = false;
  const setPlaying = (now: boolean) => {
    playing = now;
    toggle.textContent = t(now ? "rec.pause" : "rec.play");
  };
  const position = el("input");
  position.type = "range";
  position.min = "0";
  position.step = "0.1";
  position.setAttribute("aria-label", t("rec.position"));
  const clock = el("span", "", "muted");
  controls.append(toggle, position, clock);
  let ticker: ReturnType<typeof setInterval> | undefined;
  const showPosition = () => {
    if (!replayer) return;
    const seconds = replayer.getCurrentTime() / 1000;
    position.value = String(seconds);
    clock.textContent = t("rec.clock", { at: seconds.toFixed(1), total: position.max });
  };
  toggle.addEventListener("click", () => {
    if (!replayer) return;
    if (playing) {
      replayer.pause();
      setPlaying(false);
    } else {
      replayer.play(replayer.getCurrentTime());
      setPlaying(true);
    }
  });
  position.addEventListener("input", () => {
    if (!replayer) return;
    const at = Number(position.value) * 1000;
    if (playing) replayer.play(at);
    else replayer.pause(at);
    showPosition();
  });

  const unlock = el("form", "", "office-form");
  const file = field(unlock, t("rec.keyFile"), el("input"));
  file.type = "file";
  file.accept = ".json,application/json";
  const passphrase = field(unlock, t("rec.passphrase"), el("input"));
  passphrase.type = "password";
  passphrase.autocomplete = "off";
  const open = el("button", t("rec.unlock"));
  open.type = "submit";
  unlock.append(open);
  unlock.addEventListener("submit", (event) => {
    event.preventDefault();
    const chosen = file.files?.[0];
    if (!chosen) return say(t("rec.chooseFile"));
    say(t("rec.opening"), true);
    chosen.text()
      .then((text) => openKeyFile(text, passphrase.value))
      .then((opened) => {
        key?.privateKey.fill(0);
        key = opened;
        passphrase.value = "";
        say(t("rec.unlocked", { key: opened.keyId }), true);
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
    if (!key) return say(t("rec.unlockFirst"));
    stopPlayer();
    player.setAttribute("aria-label", "Recording playback");
    say(t("rec.fetching"), true);
    try {
      const response = await relayFetch(`/api/recordings/${encodeURIComponent(r.recording_id)}/content`);
      if (!response.ok) throw new RecordingError(t("rec.refused", { status: response.status }));
      // The whole recording is checked before anything of it is shown (docs/recordings.md).
      // An interrupted recording (a crash, storage failing) plays up to where it stopped, labelled
      // incomplete (issue 13); everything else about it is checked as for any recording.
      const { events, assets, skipped, start, end, header } = await openRecording(
        new Uint8Array(await response.arrayBuffer()), key, { partial: true },
      );
      if (events.length < 2) return say(t("rec.empty"));
      // issue 14, item 7: the player fetches nothing either; the page assets the recording
      // carried are shown from blob: URLs of this page (released when another recording plays).
      playerAssets.dispose();
      for (const asset of assets) playerAssets.add(asset);
      // A page beyond what the mirror holds (./budget.ts) is not played: its nodes would fill the tab.
      const notes = { stylesHeld: false, snapshotsHeld: false };
      const playable = playableEvents(events, playerAssets, notes);
      if (!playable) return say(t("rec.tooLarge"));
      // Style changes and full snapshots beyond the budget (./budget.ts) are played late or not
      // at all: never silently.
      const heldNote = (notes.stylesHeld ? ` ${t("rec.stylesHeld")}` : "") + (notes.snapshotsHeld ? ` ${t("rec.snapshotsHeld")}` : "");
      const replayerEvents = playable as ConstructorParameters<typeof Replayer>[0];
      replayer = new Replayer(replayerEvents, {
        root: player, mouseTail: false, UNSAFE_replayCanvas: false, showWarning: false,
      });
      replayer.iframe.setAttribute("title", t("rec.title", { id: r.recording_id }));
      confineMirror(replayer.iframe); // before its first snapshot is built (rrweb defers it)
      replayer.on("resize", (dimension) => {
        const { width, height } = dimension as { width: number; height: number };
        const scale = Math.min(1, player.clientWidth / width);
        if (replayer?.wrapper) replayer.wrapper.style.transform = `scale(${scale})`;
        player.style.height = `${Math.ceil(height * scale)}px`;
      });
      replayer.on("finish", () => setPlaying(false));
      replayer.play();
      position.max = (replayer.getMetaData().totalTime / 1000).toFixed(1);
      setPlaying(true);
      controls.hidden = false;
      ticker = setInterval(showPosition, 250);
      if (end) {
        say(
          t("rec.playing", { events: events.length, origin: start.origin, agent: plainLine(start.agent, MAX_NAME) }) +
            (skipped ? ` ${t("rec.skipped", { frames: skipped })}` : "") + heldNote,
          true,
        );
      } else {
        const skippedNote = (skipped ? ` ${t("rec.skipped", { frames: skipped })}` : "") + heldNote;
        say(
          // The server's end reason (its header's, unchecked) as one plain line of its words.
          `INCOMPLETE RECORDING: it stops where it was cut short (the server says: ${plainLine(String(header.end_reason ?? "still running"))}). ` +
            `Playing the ${events.length} events saved until then, recorded on ${start.origin} with ${plainLine(start.agent, MAX_NAME)}, unedited up to that point.${skippedNote}`,
        );
        player.setAttribute("aria-label", "Recording playback (incomplete: cut short)");
      }
    } catch (error) {
      stopPlayer();
      if (error instanceof ChannelError) say(t("rec.integrity", { reason: error.message }));
      else say((error as Error).message);
    }
  };

  const listed = listView<Recording>({
    headers: [t("col.started"), t("col.length"), t("col.site"), t("col.agent"), t("rec.frames"), t("col.endedBecause"), t("col.actions")],
    caption: t("nav.recordings"),
    search: t("search.recordings"),
    t,
    text: (r) => `${r.recording_id} ${r.session_id} ${r.site_id} ${r.agent} ${humanLabel(r.end_reason)}`,
    cells: (r) => {
        const actions = el("span", "", "row-actions");
        const playButton = el("button", t("rec.play"));
        playButton.setAttribute("aria-label", t("rec.playFor", { id: r.recording_id }));
        playButton.addEventListener("click", () => void play(r));
        const exportLink = el("a", t("rec.export"));
        exportLink.href = `${relay().base}/api/recordings/${encodeURIComponent(r.recording_id)}/export`;
        exportLink.setAttribute("download", "");
        exportLink.setAttribute("aria-label", t("rec.exportFor", { id: r.recording_id }));
        actions.append(playButton, exportLink);
        return [when(r.started_at), duration(r, t), r.site_id, r.agent, String(r.frames), humanLabel(r.end_reason), actions];
    },
  });
  list.append(listed.element);
  const render = async () => {
    const recordings = await api<Recording[]>("GET", "/api/recordings?limit=200");
    if (recordings.length) listed.refresh(recordings);
    else list.replaceChildren(el("p", t("recordings.none"), "muted"));
  };

  root.append(unlock, status, list, controls, player);
  render().catch((error: Error) => say(error.message));
}

/** The admin's recording key: create one (file for the auditors) or remove it. */
export function recordingKeyPanel(root: HTMLElement, t: OfficeT): void {
  const [status, say] = statusLine();
  const current = el("p");
  // The key id the site's own pages must pin: the customer's browser wraps for no other key.
  const pin = el("form", "", "office-form");
  pin.addEventListener("submit", (event) => event.preventDefault());
  const pinId = field(pin, t("rec.pin"), el("input"));
  pinId.readOnly = true;
  const copy = copyButton(t("rec.copyId"), () => pinId.value, say, t);
  const pinHelp = el("p", "", "muted");
  pin.append(copy, pinHelp);
  const remove = el("button", t("rec.remove"));
  const form = el("form", "", "office-form");
  const first = field(form, t("rec.newPassphrase"), el("input"));
  const second = field(form, t("rec.again"), el("input"));
  for (const input of [first, second]) {
    input.type = "password";
    input.autocomplete = "new-password";
  }
  const create = el("button", t("rec.create"));
  create.type = "submit";
  form.append(create);

  const render = async () => {
    const org = await api<Org>("GET", "/api/org");
    current.textContent = org.recording_key
      ? t("rec.withKey", { key: org.recording_key.key_id })
      : t("rec.noKey");
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
    if (first.value !== second.value) return say(t("rec.differ"));
    if (first.value.length < MIN_PASSPHRASE_LENGTH) {
      return say(t("rec.short", { length: MIN_PASSPHRASE_LENGTH }));
    }
    const passphrase = first.value;
    form.reset();
    say(t("rec.creating"), true);
    render()
      .then((org) => newKeyFile(org.org_id, passphrase))
      .then(async (keyFile) => {
        const json = new Blob([JSON.stringify(keyFile, null, 2)], { type: "application/json" });
        saveFile(`tandem-recording-key-${keyFile.key_id}.json`, json);
        await api("PUT", "/api/org/recording-key", { public_key: keyFile.public_key } satisfies RecordingKeyBody);
        say(t("rec.inUse", { key: keyFile.key_id }), true);
        return render();
      })
      .catch((error: Error) => say(error.message));
  });
  remove.addEventListener("click", () => {
    api("DELETE", "/api/org/recording-key")
      .then(() => {
        say(t("rec.removed"), true);
        return render();
      })
      .catch((error: Error) => say(error.message));
  });

  // Erasure (GDPR): admins list recordings and erase ended ones; they cannot play them.
  const recordings = el("div");
  const listRecordings = async () => {
    const found = await api<Recording[]>("GET", "/api/recordings?limit=200");
    recordings.replaceChildren(found.length ? table(
      [t("col.started"), t("col.length"), t("col.site"), t("col.agent"), t("col.endedBecause"), t("col.actions")],
      found.map((r) => {
        const erase = el("button", t("rec.erase"));
        erase.setAttribute("aria-label", t("rec.eraseFor", { id: r.recording_id }));
        erase.disabled = r.ended_at === null;
        erase.addEventListener("click", () => {
          if (!confirm(t("rec.confirmErase"))) return;
          api("DELETE", `/api/recordings/${encodeURIComponent(r.recording_id)}`)
            .then(() => {
              say(t("rec.erased", { id: r.recording_id }), true);
              return listRecordings();
            })
            .catch((error: Error) => say(error.message));
        });
        return [when(r.started_at), duration(r, t), r.site_id, r.agent, humanLabel(r.end_reason), erase];
      }),
    ) : el("p", t("rec.noneAdmin"), "muted"));
  };

  remove.type = "button";
  root.append(el("h2", t("rec.keyTitle")), current, pin, form, remove, status, el("h2", t("rec.erasure")), recordings);
  render().catch((error: Error) => say(error.message));
  listRecordings().catch((error: Error) => say(error.message));
}
