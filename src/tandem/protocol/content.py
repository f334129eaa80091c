"""How the browsers pack page content before encrypting it (sdk/src/shared/payload.ts).

The relay never parses any of this: it sees ciphertext. It is here because `tandem recording
open` (tandem.recordings) reads what the customer's browser packed, and the SDK's copy of the
dictionary is generated from this one (``make generate`` writes sdk/src/generated/content.ts).

A content frame's plaintext is one flag byte and a body:

* ``0``: the body is the payload's JSON (earlier versions);
* ``1``: raw deflate of the frame's JSON on its own, one complete stream (zlib's
  ``decompressobj(-15)`` reads it to its end): the first versions packed every frame so; now
  the frames of at least 128 KiB and the parts of a payload split in parts (a large page's
  full snapshot), deflated by the browser's native CompressionStream, between the frames of the
  epoch's stream (which they leave as it was);
* ``2``: the epoch's raw deflate stream, sync-flushed after every frame (earlier versions);
* ``3``: as ``2``, the stream primed with :data:`CONTENT_DICTIONARY` (zlib's preset
  dictionary: ``zlib.decompressobj(-15, zdict=CONTENT_DICTIONARY)``).

Each epoch starts a new stream, so a player starts reading at an epoch's first frame.
"""

from __future__ import annotations

RAW = 0
DEFLATED = 1
STREAMED = 2
STREAMED_WITH_DICTIONARY = 3

# What rrweb's events and the browsers' serialised CSS have in common on any site (no site's
# own words): deflate finds it in the window from the first frame of an epoch on, so a page's
# full snapshot is not the only text it can refer back to. The most frequent strings come
# last (deflate codes near distances in fewer bits). Changing it breaks every recording made
# with flag 3: a new dictionary needs a new flag.
_CSS = (
    "@media (max-width: px) { @media (prefers-reduced-motion: reduce) { @media (min-width: "
    '@font-face { font-family: src: url(format(\\"woff2\\") ; font-display: swap; '
    "transform: translate(-50%, -50%); transform: rotate(45deg); transition: all 0.2s ease 0s; "
    "transition: opacity 0.15s ease-in-out; animation: 1s linear 0s infinite normal none running "
    "grid-template-columns: repeat(auto-fill, minmax(px, 1fr)); grid-template-columns: 1fr 1fr; "
    "justify-content: space-between; justify-content: center; justify-content: flex-end; "
    "flex-direction: column; flex-wrap: wrap; flex: 1 1 0%; flex-shrink: 0; align-self: center; "
    "text-transform: uppercase; text-overflow: ellipsis; vertical-align: middle; "
    "list-style: none; letter-spacing: 0.02em; word-break: break-word; "
    "overflow: hidden; overflow-x: auto; visibility: hidden; pointer-events: none; "
    "position: absolute; position: relative; position: fixed; position: sticky; "
    "top: 0px; right: 0px; bottom: 0px; left: 0px; inset: 0px; z-index: 10; "
    "width: 100%; height: 100%; max-width: 100%; min-width: 0px; min-height: 100vh; "
    "box-shadow: rgba(0, 0, 0, 0.1) 0px 1px 3px; box-shadow: none; "
    "outline: rgb(255, 255, 255) solid 2px; outline-offset: 2px; outline: none; "
    "border-bottom: 1px solid rgb(; border-top: 1px solid rgb(; border: 1px solid rgb(; "
    "border-radius: 4px; border-radius: 8px; border-radius: 50%; border: 0px; border: none; "
    "text-decoration: none; text-decoration: underline; text-align: center; text-align: left; "
    "white-space: nowrap; cursor: pointer; cursor: not-allowed; user-select: none; opacity: 0.5; "
    'font-family: system-ui, -apple-system, \\"Segoe UI\\", Roboto, \\"Helvetica Neue\\", '
    "Arial, sans-serif; font-family: inherit; font-size: 12px; font-size: 14px; font-size: 16px; "
    "font-size: 18px; font-size: 24px; font-weight: 400; font-weight: 500; font-weight: 600; "
    "font-weight: 700; line-height: 1.5; line-height: 1; font: inherit; color: inherit; "
    "background: transparent; background-color: rgb(255, 255, 255); background: var(--; "
    "color: rgb(255, 255, 255); color: var(--; display: inline-flex; display: inline-block; "
    "display: grid; display: none; display: block; display: flex; align-items: center; gap: 8px; "
    "gap: 12px; gap: 16px; box-sizing: border-box; margin: 0px auto; margin: 0px; margin-top: "
    "margin-bottom: 0px; padding: 0px; padding: 8px 12px; padding: 0px 16px; "
    "a:hover { :hover { :focus-visible { :focus { ::before { ::after { :root { --"
)
_RRWEB = (
    '{"type":3,"data":{"source":1,"positions":[{"x":,"y":,"id":,"timeOffset":'
    '{"type":3,"data":{"source":3,"id":,"x":0,"y":'
    '{"type":3,"data":{"source":4,"width":,"height":'
    '{"type":3,"data":{"source":2,"type":,"id":,"x":,"y":,"pointerType":0}'
    '{"type":3,"data":{"source":5,"text":"","isChecked":false,"id":'
    '{"type":3,"data":{"source":0,"texts":[],"attributes":[{"id":,"attributes":{"class":"'
    '"removes":[{"parentId":,"id":}],"adds":[{"parentId":,"nextId":null,"node":'
    '{"type":4,"data":{"href":"https://","width":,"height":},"timestamp":'
    '{"k":"context","origin":"https://","title":"","device":"desktop","viewport":{"w":,"h":}}'
    '{"k":"asset","url":"https://","type":"image/svg+xml","data":"PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciIHZpZXdCb3g9I'
    '{"type":2,"data":{"node":{"type":0,"childNodes":[{"type":1,"name":"html","publicId":"",'
    '"systemId":"","id":2},{"type":2,"tagName":"html","attributes":{"lang":"en"},"childNodes":['
    '{"type":2,"tagName":"head","attributes":{},"childNodes":['
    '{"type":2,"tagName":"meta","attributes":{"charset":"utf-8"},"childNodes":[],"id":'
    '{"type":2,"tagName":"meta","attributes":{"name":"viewport","content":"width=device-width, '
    'initial-scale=1"},"childNodes":[],"id":'
    '{"type":2,"tagName":"title","attributes":{},"childNodes":[{"type":3,"textContent":"'
    '{"type":2,"tagName":"link","attributes":{"rel":"icon","href":"https://'
    '{"type":2,"tagName":"link","attributes":{"rel":"stylesheet","href":"https://'
    '{"type":2,"tagName":"link","attributes":{"_cssText":"'
    '{"type":2,"tagName":"style","attributes":{"_cssText":"'
    '{"type":2,"tagName":"script","attributes":{"src":"https://'
    '{"type":2,"tagName":"noscript","attributes":{},"childNodes":[],"id":'
    '{"type":5,"textContent":"'
    '{"type":2,"tagName":"svg","attributes":{"viewBox":"0 0 24 24","fill":"none",'
    '"aria-hidden":"true"},'
    '"childNodes":[{"type":2,"tagName":"path","attributes":{"d":"M'
    '"isSVG":true,"id":'
    '{"type":2,"tagName":"img","attributes":{"src":"https://","alt":"","width":"","height":"",'
    '"loading":"lazy"},"childNodes":[],"id":'
    '{"type":2,"tagName":"select","attributes":{"id":"","name":"","value":""},"childNodes":['
    '{"type":2,"tagName":"option","attributes":{"value":"","selected":true},"childNodes":['
    '{"type":2,"tagName":"textarea","attributes":{"id":"","name":"","rows":"'
    '{"type":2,"tagName":"input","attributes":{"type":"checkbox","id":"","name":"","checked":true},'
    '{"type":2,"tagName":"input","attributes":{"type":"email","id":"","name":"","autocomplete":"email",'
    '{"type":2,"tagName":"input","attributes":{"type":"search","id":"","placeholder":"","value":"",'
    '{"type":2,"tagName":"input","attributes":{"type":"text","id":"","name":"","autocomplete":"",'
    '"required":"","value":""},"childNodes":[],"id":'
    '{"type":2,"tagName":"label","attributes":{"for":"'
    '{"type":2,"tagName":"form","attributes":{"id":"","action":"","method":"post","novalidate":""},'
    '{"type":2,"tagName":"table","attributes":{},"childNodes":[{"type":2,"tagName":"thead",'
    '{"type":2,"tagName":"tr","attributes":{},"childNodes":[{"type":2,"tagName":"td","attributes":{},'
    '{"type":2,"tagName":"th","attributes":{"scope":"col"},"childNodes":['
    '{"type":2,"tagName":"footer","attributes":{"class":"'
    '{"type":2,"tagName":"header","attributes":{"class":"'
    '{"type":2,"tagName":"nav","attributes":{"aria-label":"'
    '{"type":2,"tagName":"main","attributes":{"id":"'
    '{"type":2,"tagName":"section","attributes":{"class":"'
    '{"type":2,"tagName":"article","attributes":{"class":"'
    '{"type":2,"tagName":"h1","attributes":{},"childNodes":[{"type":3,"textContent":"'
    '{"type":2,"tagName":"h2","attributes":{},"childNodes":[{"type":3,"textContent":"'
    '{"type":2,"tagName":"h3","attributes":{"class":"'
    '{"type":2,"tagName":"strong","attributes":{},"childNodes":[{"type":3,"textContent":"'
    '{"type":2,"tagName":"ul","attributes":{"class":"'
    '{"type":2,"tagName":"li","attributes":{"class":"'
    '{"type":2,"tagName":"a","attributes":{"href":"https://","aria-current":"page","class":"'
    '{"type":2,"tagName":"button","attributes":{"type":"submit","class":"'
    '{"type":2,"tagName":"button","attributes":{"type":"button","class":"'
    '{"type":2,"tagName":"span","attributes":{"class":"'
    '{"type":2,"tagName":"p","attributes":{"class":"'
    '{"type":2,"tagName":"p","attributes":{},"childNodes":[{"type":3,"textContent":"'
    '{"type":2,"tagName":"div","attributes":{"rr_width":"0px","rr_height":"0px"},"childNodes":[],'
    '"isShadowHost":true,"id":'
    '{"type":2,"tagName":"div","attributes":{"id":"'
    '{"type":2,"tagName":"div","attributes":{"class":"'
    '"},"childNodes":[],"id":'
    '"},"childNodes":[{"type":3,"textContent":"'
    '"initialOffset":{"left":0,"top":0}},"timestamp":'
    '{"k":"consented"}{"k":"events","events":['
    '{"type":3,"textContent":"\\n        ","id":'
    '{"type":3,"textContent":"\\n      ","id":'
    '{"type":3,"textContent":"\\n    ","id":'
    '{"type":3,"textContent":"\\n  ","id":'
)
CONTENT_DICTIONARY = (_CSS + _RRWEB).encode("ascii")
"""zlib's preset dictionary of flag 3 (ASCII, under deflate's 32 KiB window)."""
