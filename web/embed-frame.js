// embed.html: the iframe form of <concord-figure>. The URL hash holds the element's attributes
// (`key=value&…`, URL-encoded: the same keys as the element and the playground's hash); the
// figure is rebuilt from it on `hashchange`, and the document's height is posted to the parent
// page as {type: 'concord:resize', height} so it can size the iframe (works in
// <iframe sandbox="allow-scripts">: posting to any origin is all a sandboxed frame can do).
import './concord-embed.js';

/** `a=1&b=x%20y` → [['a', '1'], ['b', 'x y']]; a key without `=` gets the value ''. */
function parseHash(hash) {
  const pairs = [];
  for (const part of hash.replace(/^#/, '').split('&')) {
    if (!part) continue;
    const at = part.indexOf('=');
    const [k, v] = at === -1 ? [part, ''] : [part.slice(0, at), part.slice(at + 1)];
    const decode = (s) => { try { return decodeURIComponent(s.replace(/\+/g, ' ')); } catch { return s; } };
    const key = decode(k).trim();
    // Only names an attribute can have; anything else is dropped here (setAttribute would throw).
    if (/^[A-Za-z_][A-Za-z0-9_.:-]*$/.test(key)) pairs.push([key, decode(v)]);
  }
  return pairs;
}

let figure = null;

/** Apply the hash: the first time create the figure; later set exactly the hash's attributes
 *  (the element applies changes live, removed keys go back to their defaults). */
function apply() {
  const pairs = parseHash(location.hash);
  if (!figure) {
    figure = document.createElement('concord-figure');
    for (const [k, v] of pairs) figure.setAttribute(k, v);
    if (!figure.hasAttribute('aria-label')) figure.setAttribute('aria-label', 'Concord figure');
    document.body.appendChild(figure);
    return;
  }
  const wanted = new Map(pairs.map(([k, v]) => [k.toLowerCase(), v]));
  for (const { name } of [...figure.attributes]) {
    if (!wanted.has(name) && name !== 'role' && name !== 'aria-label') figure.removeAttribute(name);
  }
  for (const [k, v] of wanted) if (figure.getAttribute(k) !== v) figure.setAttribute(k, v);
}

apply();
addEventListener('hashchange', apply);

let lastHeight = -1;
function postHeight() {
  const height = Math.ceil(document.documentElement.getBoundingClientRect().height);
  if (height === lastHeight) return;
  lastHeight = height;
  if (parent !== window) parent.postMessage({ type: 'concord:resize', height }, '*');
}
new ResizeObserver(postHeight).observe(document.documentElement);
postHeight();
