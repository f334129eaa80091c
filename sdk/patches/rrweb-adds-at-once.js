// Inserted into rrweb 2.2.2's bundle by sdk/rrweb-patches.mjs ("Added nodes at once"): a top-level
// function of that module (NodeType, buildNodeWithSN are its own), called by the replayer's
// applyMutation before its own one-by-one path. Not used by the recorder (the SDK's bundle drops it).
//
// A mutation's added nodes are built detached and go into the mirror in one insertion per place:
// the nodes added to one parent before one next sibling (or at its end) are gathered in a
// fragment, children of added nodes into their parents' fragments, and the fragments are
// inserted deepest first, so that each place in the page already there receives its whole
// subtree at once. Chromium's form association makes each insertion into a `<form>` cost in
// proportion to the controls already in it: 3,000 fields added at once to a shared form took
// tens of seconds to apply one by one (bench/RESULTS.md, "Fields added while shared").
//
// Only a mutation the one-by-one path would apply in order, without its special cases, is taken:
// every added node an element, text, comment or CDATA, new (not in the mirror), not in a shadow
// root, with no `previousId` (old recordings) and no `<iframe>` (their documents attach to them
// connected); every parent an element already in the mirror (not a `<textarea>`, `<style>` or
// `<iframe>`, whose text the one-by-one path treats apart) or added earlier in the same mutation;
// every next sibling a child of that parent in the mirror or added earlier to the same parent.
// Otherwise it returns false and nothing was done. Each node is built exactly as the one-by-one
// path builds it (buildNodeWithSN, skipChild), and `afterAppend` is called for each, in the
// mutation's order, once all are in place (connected, as the one-by-one path calls it).
function tandemAddsAtOnce(adds, mirror, doc, cache, afterAppend) {
	if (adds.length < 2 || !doc) return false;
	const added = new Map();
	for (let i = 0; i < adds.length; i++) {
		const m = adds[i];
		const n = m && m.node;
		if (!n || (n.type !== NodeType.Element && n.type !== NodeType.Text && n.type !== NodeType.Comment && n.type !== NodeType.CDATA)) return false;
		if (n.isShadow || m.previousId || m.nextId === -1 || added.has(n.id) || mirror.getNode(n.id)) return false;
		if (n.rootId && !mirror.getNode(n.rootId)) return false;
		if (n.type === NodeType.Element && String(n.tagName).toLowerCase() === "iframe") return false;
		let parentTag;
		const parentAt = added.get(m.parentId);
		if (parentAt !== undefined) {
			const p = adds[parentAt].node;
			if (p.type !== NodeType.Element) return false;
			parentTag = p.tagName;
		} else {
			const parent = mirror.getNode(m.parentId);
			const meta = parent && mirror.getMeta(parent);
			if (!meta || meta.type !== NodeType.Element || parent.nodeType !== 1) return false;
			parentTag = meta.tagName;
		}
		parentTag = String(parentTag).toLowerCase();
		if (parentTag === "iframe" || (n.type === NodeType.Text && (parentTag === "textarea" || parentTag === "style"))) return false;
		if (m.nextId !== null && m.nextId !== void 0) {
			const nextAt = added.get(m.nextId);
			if (nextAt !== undefined) {
				if (adds[nextAt].parentId !== m.parentId) return false;
			} else {
				const next = mirror.getNode(m.nextId);
				if (parentAt !== undefined || !next || next.parentNode !== mirror.getNode(m.parentId)) return false;
			}
		}
		added.set(n.id, i);
	}
	const built = [];
	const places = [];
	const byParent = new Map();
	for (const m of adds) {
		const target = buildNodeWithSN(m.node, {
			doc: m.node.rootId ? mirror.getNode(m.node.rootId) : doc,
			mirror,
			skipChild: true,
			hackCss: true,
			cache
		});
		if (!target) continue;
		built.push([target, m.node.id]);
		const next = m.nextId ? mirror.getNode(m.nextId) || null : null;
		if (next && added.has(m.nextId) && next.parentNode) {
			next.parentNode.insertBefore(target, next);
			continue;
		}
		const parent = mirror.getNode(m.parentId);
		if (!parent) continue; // its parent was not built (buildNode refused it): nor is it
		let byNext = byParent.get(parent);
		if (!byNext) byParent.set(parent, byNext = new Map());
		let place = byNext.get(next);
		if (!place) {
			place = { parent, next, fragment: parent.ownerDocument.createDocumentFragment() };
			byNext.set(next, place);
			places.push(place);
		}
		place.fragment.appendChild(target);
	}
	for (let i = places.length - 1; i >= 0; i--) {
		const { parent, next, fragment } = places[i];
		if (next) parent.insertBefore(fragment, next);
		else parent.appendChild(fragment);
	}
	for (const [target, id] of built) afterAppend(target, id);
	return true;
}
