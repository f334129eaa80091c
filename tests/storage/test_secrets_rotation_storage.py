"""Rotating the secrets key (``tandem.secrets_rotation``) on both backends: every stored secret
sealed again with the new key, readable at every point of a rotation stopped half-way, and the
previous key kept as long as recovery codes need it."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import pyotp
import pytest

from tandem import auth, crypto, secrets_rotation
from tandem.audit import AuditLog, load_or_create_key
from tandem.compliance import DAY, MAX_KEY_CHANGE_DAYS, audit_state, evaluate
from tandem.config import Settings
from tandem.directory import Directory
from tandem.exceptions import ConflictError, SecondFactorError, StorageError
from tandem.storage.base import NO_ORG, SEALED_KINDS, SealedSecret, Storage
from tests.grants import of_org
from tests.test_compliance import compliant

PASSWORD = "blue-kettle-orbit-42"
NOW = 1_800_000_000.0


class Trail:
    """The records a rotation writes, as the CLI's directory would write them."""

    def __init__(self) -> None:
        self.records: list[tuple[str, dict[str, Any]]] = []

    async def __call__(self, action: str, **fields: Any) -> None:
        self.records.append((action, fields))


async def seal_one_of_each(storage: Storage, box: crypto.SecretBox) -> auth.Enrolment:
    """A secret of every kind the database keeps sealed (:data:`SEALED_KINDS`); returns the
    enrolment of ``alice`` (authenticator and recovery codes)."""
    default = of_org("default")
    _, enrolment = await auth.create_user(
        storage, "alice", PASSWORD, "agent", None, 0.0, grant=default, box=box
    )
    await auth.create_user(storage, "bob", PASSWORD, "agent", None, 0.0, grant=default)
    bob = await storage.get_user("bob")
    assert bob is not None and enrolment is not None
    await auth.begin_second_factor(storage, bob, box, crypto.system_entropy)
    site = await storage.site_for_origin("self")
    assert site is not None
    await storage.update_site(default, dataclasses.replace(site, token_key=box.seal("site-key")))
    await storage.set_oidc(default, box.seal('{"client_secret": "s3cret"}'))
    await storage.put_oidc_pending(default, "state-digest", box.seal('{"x": 1}'), NOW + 600)
    return enrolment


async def opened(storage: Storage, box: crypto.SecretBox) -> dict[tuple[str, str], str]:
    return {(s.kind, s.key): box.open(s.sealed) for s in await storage.sealed_secrets()}


async def sign_in(storage: Storage, box: crypto.SecretBox, code: str) -> str:
    _, _, factor = await auth.sign_in(
        storage, "alice", PASSWORD, NOW, 60, crypto.system_entropy, code=code, box=box
    )
    return factor


async def test_a_rotation_seals_every_stored_secret_with_the_new_key(
    storage: Storage, tmp_path: Path
) -> None:
    key_file = tmp_path / "secrets.key"
    old = crypto.SecretBox(key_file)
    old_id = old.ring.current_id  # the box follows the file: read before the rotation
    enrolment = await seal_one_of_each(storage, old)
    before = await opened(storage, old)
    assert {kind for kind, _ in before} == set(SEALED_KINDS)
    trail = Trail()
    box, resealed, changed = await secrets_rotation.rotate(storage, key_file, trail)
    assert (resealed, changed) == (5, 0)
    assert box.ring.current_id != old_id
    assert await opened(storage, box) == before
    assert all(box.sealed_with_current(s.sealed) for s in await storage.sealed_secrets())
    found = await secrets_rotation.census(storage, box)
    assert found.sealed_with_previous == () and found.unreadable == ()
    assert trail.records == [
        (
            "secrets_key_rotated",
            {
                "actor": "cli",
                "org": NO_ORG,
                "subject": box.ring.current_id,
                "replaced": old_id,
            },
        )
    ]
    # The authenticator, whose seed was resealed, signs in with the new key ring.
    assert await sign_in(storage, box, pyotp.TOTP(enrolment.secret).at(NOW)) == auth.AUTHENTICATOR


async def test_a_rotation_stopped_at_any_point_leaves_every_secret_readable(
    storage: Storage, tmp_path: Path
) -> None:
    """A crash between any two statements of a rotation: the key file is replaced whole before
    anything is sealed with its new key, and each secret is resealed in a statement of its
    own; at every point the ring on disk opens every secret, and ``reseal`` finishes."""
    key_file = tmp_path / "secrets.key"
    old = crypto.SecretBox(key_file)
    await seal_one_of_each(storage, old)
    before = await opened(storage, old)
    crypto.write_key_ring(key_file, old.ring.rotated())  # the rotation's first step
    # The file a crash during that write leaves beside it changes nothing.
    (tmp_path / "secrets.key.new").write_bytes(b"half a key")
    pending = (
        await secrets_rotation.census(storage, crypto.SecretBox(key_file))
    ).sealed_with_previous
    assert len(pending) == 5
    for done in range(len(pending) + 1):
        on_disk = crypto.SecretBox(key_file)  # what a restart after the crash reads
        assert await opened(storage, on_disk) == before, f"after {done} resealed"
        if done < len(pending):
            secret = pending[done]
            assert await storage.reseal_secret(secret, on_disk.reseal(secret.sealed))
    box = crypto.SecretBox(key_file)
    assert await secrets_rotation.reseal(storage, box) == (0, 0)
    found = await secrets_rotation.census(storage, box)
    assert found.sealed_with_previous == ()


async def test_a_secret_changed_during_a_rotation_keeps_the_change(
    storage: Storage, tmp_path: Path
) -> None:
    """A reseal writes only over the value it read: a new setting stored meanwhile stays."""
    key_file = tmp_path / "secrets.key"
    box = crypto.SecretBox(key_file)
    await storage.set_oidc(of_org("default"), box.seal("old settings"))
    [read] = [s for s in await storage.sealed_secrets() if s.kind == "org_oidc"]
    await storage.set_oidc(of_org("default"), box.seal("new settings"))
    assert not await storage.reseal_secret(read, box.seal("old settings, resealed"))
    [now] = [s for s in await storage.sealed_secrets() if s.kind == "org_oidc"]
    assert box.open(now.sealed) == "new settings"
    assert not await storage.reseal_secret(SealedSecret("org_oidc", "nope", "x"), "y")


async def test_recovery_codes_keyed_before_a_rotation_work_until_the_old_key_is_retired(
    storage: Storage, tmp_path: Path
) -> None:
    """Recovery codes are stored as keyed digests, which cannot be keyed again: they are
    checked under the previous key, retiring it is refused while they exist (the census names
    the accounts), and ``--force`` retires it, naming the accounts whose codes stop working."""
    key_file = tmp_path / "secrets.key"
    old = crypto.SecretBox(key_file)
    old_id = old.ring.current_id
    enrolment = await seal_one_of_each(storage, old)
    trail = Trail()
    box, _, _ = await secrets_rotation.rotate(storage, key_file, trail)
    assert await sign_in(storage, box, enrolment.recovery_codes[0]) == auth.RECOVERY_CODE
    found = await secrets_rotation.census(storage, box)
    assert found.codes_with_previous == {"alice": 9}
    with pytest.raises(ConflictError, match="alice"):
        await secrets_rotation.retire(storage, key_file, trail)
    assert crypto.SecretBox(key_file).ring.previous  # nothing dropped
    box, found = await secrets_rotation.retire(storage, key_file, trail, force=True)
    assert found.codes_with_previous == {"alice": 9}
    assert box.ring.previous == () and box.ring.keys == (crypto.SecretBox(key_file).ring.current,)
    assert trail.records[-1] == (
        "secrets_key_retired",
        {
            "actor": "cli",
            "org": NO_ORG,
            "subject": box.ring.current_id,
            "retired": [old_id],
            "recovery_codes_unusable": ["alice"],
        },
    )
    with pytest.raises(SecondFactorError):
        await sign_in(storage, box, enrolment.recovery_codes[1])
    assert await storage.recovery_code_digests() == []  # none left that match nothing
    assert await opened(storage, box)  # every sealed secret still opens


async def test_what_a_server_on_the_old_key_ring_sealed_is_resealed_before_its_key_goes(
    storage: Storage, tmp_path: Path
) -> None:
    """A server not yet given the new file seals with the replaced key: retiring it reseals
    that first, so nothing is left that only the dropped key opened."""
    key_file = tmp_path / "secrets.key"
    crypto.SecretBox(key_file)
    straggler_file = tmp_path / "elsewhere" / "secrets.key"
    straggler_file.parent.mkdir()
    shutil.copy(key_file, straggler_file)
    straggler = crypto.SecretBox(straggler_file)  # a server not given the rotated file
    trail = Trail()
    await secrets_rotation.rotate(storage, key_file, trail)
    await storage.set_oidc(of_org("default"), straggler.seal("settings saved on it"))
    box, _ = await secrets_rotation.retire(storage, key_file, trail)
    assert box.ring.previous == ()
    assert await opened(storage, box) == {("org_oidc", "default"): "settings saved on it"}


async def test_recovery_codes_an_earlier_version_keyed_are_named_with_their_key_at_rotation(
    storage: Storage, tmp_path: Path
) -> None:
    """Codes keyed before digests named their key (``k1:``) were keyed with the key current
    until the rotation: named with it then, they count as the previous key's, and still work."""
    key_file = tmp_path / "secrets.key"
    old = crypto.SecretBox(key_file)
    enrolment = await seal_one_of_each(storage, old)
    user = await storage.get_user("alice")
    assert user is not None
    earlier = tuple(old.digest(f"alice:{code}", "recovery") for code in enrolment.recovery_codes)
    assert all(digest.startswith("k1:") for digest in earlier)
    await storage.set_second_factor(of_org("default"), "alice", user.totp_secret, earlier)
    assert (await secrets_rotation.census(storage, old)).codes_with_previous == {}
    box, _, _ = await secrets_rotation.rotate(storage, key_file, Trail())
    found = await secrets_rotation.census(storage, box)
    assert found.codes_with_previous == {"alice": 10} and found.codes_lost == {}
    assert await sign_in(storage, box, enrolment.recovery_codes[3]) == auth.RECOVERY_CODE


async def test_a_secret_no_key_of_the_ring_opens_is_named_and_does_not_stop_a_rotation(
    storage: Storage, tmp_path: Path
) -> None:
    """Sealed under a key lost long ago (a back-up of another installation restored): the
    census names it, a rotation leaves it as it is and reseals the rest."""
    key_file = tmp_path / "secrets.key"
    box = crypto.SecretBox(key_file)
    lost = crypto.SecretBox(tmp_path / "lost.key")
    await storage.set_oidc(of_org("default"), lost.seal("settings under a lost key"))
    await storage.put_oidc_pending(of_org("default"), "state", box.seal("start"), NOW + 600)
    found = await secrets_rotation.census(storage, box)
    assert [(s.kind, s.key) for s in found.unreadable] == [("org_oidc", "default")]
    box, resealed, changed = await secrets_rotation.rotate(storage, key_file, Trail())
    assert (resealed, changed) == (1, 0)
    found = await secrets_rotation.census(storage, box)
    assert [(s.kind, s.key) for s in found.unreadable] == [("org_oidc", "default")]
    assert found.sealed_with_previous == ()


async def test_a_rotation_the_audit_trail_cannot_record_changes_no_key(
    storage: Storage, tmp_path: Path
) -> None:
    """The trail's write fails (the database away): the rotation stops before the key file
    changes, so no key becomes current unrecorded (it was recorded after the file was
    replaced: a failure left a new current key the trail never named)."""
    key_file = tmp_path / "secrets.key"
    box = crypto.SecretBox(key_file)
    await seal_one_of_each(storage, box)
    before = box.ring

    async def failing(action: str, **fields: Any) -> None:
        raise StorageError("the database is not answering")

    with pytest.raises(StorageError):
        await secrets_rotation.rotate(storage, key_file, failing)
    assert crypto.SecretBox(key_file).ring == before
    found = await secrets_rotation.census(storage, crypto.SecretBox(key_file))
    assert found.sealed_with_previous == () and found.unreadable == ()


async def test_staging_a_key_the_audit_trail_cannot_record_changes_no_key(tmp_path: Path) -> None:
    key_file = tmp_path / "secrets.key"
    before = crypto.SecretBox(key_file).ring

    async def failing(action: str, **fields: Any) -> None:
        raise StorageError("the database is not answering")

    with pytest.raises(StorageError):
        await secrets_rotation.stage(key_file, failing)
    assert crypto.SecretBox(key_file).ring == before
    trail = Trail()
    staged = await secrets_rotation.stage(key_file, trail)
    assert staged.staged is not None and crypto.SecretBox(key_file).ring == staged
    assert trail.records == [
        (
            "secrets_key_staged",
            {"actor": "cli", "org": NO_ORG, "subject": crypto.key_id(staged.staged)},
        )
    ]


async def test_a_retirement_the_database_fails_during_can_be_run_again(
    storage: Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database fails as ``retire --force`` deletes the codes keyed with the retired key:
    the key file is as it was, and running it again finishes (the codes deleted, the key
    dropped). Before, the file was written first: the previous key was gone, the codes that
    now matched nothing stayed (counted as left at every sign-in), and a second ``retire``
    was refused: no previous key to retire."""
    key_file = tmp_path / "secrets.key"
    await seal_one_of_each(storage, crypto.SecretBox(key_file))
    await secrets_rotation.rotate(storage, key_file, Trail())
    rotated = crypto.SecretBox(key_file).ring

    async def failing(codes: list[tuple[str, str]]) -> int:
        raise StorageError("the database is not answering")

    with monkeypatch.context() as patch:
        patch.setattr(storage, "forget_recovery_codes", failing)
        with pytest.raises(StorageError):
            await secrets_rotation.retire(storage, key_file, Trail(), force=True)
    assert crypto.SecretBox(key_file).ring == rotated
    box, _ = await secrets_rotation.retire(storage, key_file, Trail(), force=True)
    assert box.ring.previous == ()
    assert await storage.recovery_code_digests() == []


async def test_a_previous_or_staged_secrets_key_kept_for_long_fails_the_compliance_check(
    tmp_path: Path, storage: Storage
) -> None:
    """A staged key never made current, or a previous key never retired, passed the check
    however long it stayed (an old copy of secrets.key opening what it sealed, for years). The
    item now fails past MAX_KEY_CHANGE_DAYS from the rotation's record in the trail, with the
    command that finishes it, and passes once it is finished."""
    settings = Settings.load(environ={}, data_dir=tmp_path)
    log = AuditLog(storage, load_or_create_key(settings.audit_key_path))
    clock = [NOW]

    async def record(action: str, **fields: Any) -> None:
        await log.record(clock[0], action, **fields)

    key_file = settings.secrets_key_path
    box = crypto.SecretBox(key_file)
    directory = Directory(storage, record, lambda: clock[0], box)  # type: ignore[arg-type]

    async def item(days_later: float) -> tuple[str, str, str]:
        inst = dataclasses.replace(
            compliant(),
            audit=await audit_state(settings, directory, ()),
            secrets_previous_keys=len(box.ring.previous),
            secrets_staged_key=box.ring.staged is not None,
        )
        report = evaluate("pci-dss", inst, clock[0] + days_later * DAY)
        [found] = [r for r in report.results if r.requirement == "secrets_key"]
        return found.status, found.detail, found.fix

    assert (await item(0))[0] == "pass"
    await secrets_rotation.stage(key_file, record)
    assert (await item(MAX_KEY_CHANGE_DAYS - 1))[0] == "pass"
    status, detail, fix = await item(MAX_KEY_CHANGE_DAYS + 1)
    assert status == "fail" and "never made current" in detail
    assert "tandem secrets rotate" in fix
    clock[0] += (MAX_KEY_CHANGE_DAYS + 1) * DAY
    await secrets_rotation.rotate(storage, key_file, record)
    status, detail, _ = await item(MAX_KEY_CHANGE_DAYS - 1)
    assert status == "pass" and "under way" in detail
    status, detail, fix = await item(MAX_KEY_CHANGE_DAYS + 1)
    assert status == "fail" and "1 previous key(s)" in detail
    assert "tandem secrets retire" in fix
    await secrets_rotation.retire(storage, key_file, record)
    assert await item(365) == ("pass", "the secrets key ring holds its current key alone", "")
