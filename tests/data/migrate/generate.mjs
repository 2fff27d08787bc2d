// Writes the migration fixtures of tests/integrations/test_baileys.py with Node itself, so that the files are
// what Node really writes. Run from this directory: `node generate.mjs` (Node >= 18). The tests
// do not need Node; the generated files are committed. Bytes are derived from labels with
// SHA-512, so a rerun gives identical files.
//
// Buffer forms written (all read by vault.codec's "node" dialect):
//   base64   {"type":"Buffer","data":"<base64>"}  a replacer that acts as Baileys 7's
//            BufferJSON.replacer does (JSON.stringify calls Buffer.prototype.toJSON first, so the
//            replacer sees {type: 'Buffer', data: [...]} for a Buffer, a Uint8Array as itself)
//   array    {"type":"Buffer","data":[1,2,...]}   plain JSON.stringify of a Buffer
//   uint8    {"0":1,"1":2,...}                    plain JSON.stringify of a Uint8Array
//   legacy   {"buffer":true,"value":"<base64>"}   the form older Baileys revivers accept
import { createHash } from 'node:crypto'
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

const CANARY = 'canary-plaintext-7d1f3b9a5e2c' // tests/hygiene.py CANARY_VALUE
const NOW = Date.UTC(2025, 5, 1, 12, 0, 0) // the tests plan at this time, with a one-day TTL
const HOUR = 3600 * 1000

const bytes = (label, n = 32) => createHash('sha512').update(label).digest().subarray(0, n)
const secretKey = bytes('credvault migrate canary key') // declared a secret by the tests

const keyPair = (tag, pub = 32) => ({ private: bytes(`${tag} private`), public: bytes(`${tag} public`, pub) })
const creds = (tag) => ({
  noiseKey: { private: secretKey, public: bytes(`${tag} noise public`) },
  pairingEphemeralKeyPair: keyPair(`${tag} pairing`),
  signedIdentityKey: keyPair(`${tag} identity`, 33),
  signedPreKey: { keyPair: keyPair(`${tag} signed pre-key`, 33), signature: bytes(`${tag} sig`, 64), keyId: 1 },
  registrationId: 4711,
  advSecretKey: CANARY,
  processedHistoryMessages: [],
  nextPreKeyId: 31,
  firstUnuploadedPreKeyId: 31,
  accountSyncCounter: 1,
  accountSettings: { unarchiveChats: false },
  registered: true,
  me: { id: '4915100000000:7@s.whatsapp.net', name: 'Café Zürich ✓', lid: '123456789012345:7@lid' },
  account: { details: bytes(`${tag} details`, 40), accountSignatureKey: bytes(`${tag} ask`),
    accountSignature: bytes(`${tag} as`, 64), deviceSignature: bytes(`${tag} ds`, 64) },
  signalIdentities: [{ identifier: { name: '4915100000000:7@s.whatsapp.net', deviceId: 0 },
    identifierKey: bytes(`${tag} identifier`, 33) }],
  platform: 'smba',
  myAppStateKeyId: 'AAAAAKx/',
  lastAccountSyncTimestamp: 1748700000,
})
const appStateKey = (tag) => ({ keyData: bytes(`${tag} app key`),
  fingerprint: { rawId: 123, currentIndex: 2, deviceIndexes: [0, 1] }, timestamp: '1748700000000' })
const keys = (tag) => ({
  'pre-key': { 1: keyPair(`${tag} pre-key 1`), 2: keyPair(`${tag} pre-key 2`) },
  session: { '4915100000001.0': bytes(`${tag} session`, 48) },
  'app-state-sync-key': { 'AAAAAKx/': appStateKey(tag) },
  'sender-key-memory': { '120363025246125888@g.us': { '4915100000001:0@s.whatsapp.net': true } },
})
const record = (tag, timestamp) => ({ creds: creds(tag), keys: keys(tag), timestamp })

const replacers = {
  base64: (_, v) => (v instanceof Uint8Array || v?.type === 'Buffer'
    ? { type: 'Buffer', data: Buffer.from(v instanceof Uint8Array ? v : v.data).toString('base64') }
    : v),
  array: undefined,
  legacy: (_, v) => (v?.type === 'Buffer' ? { buffer: true, value: Buffer.from(v.data).toString('base64') } : v),
}
// Buffers -> plain Uint8Arrays, whose JSON is an object of numeric keys.
const asUint8 = (v) => (Buffer.isBuffer(v) ? new Uint8Array(v)
  : Array.isArray(v) ? v.map(asUint8)
    : v && typeof v === 'object' ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, asUint8(x)]))
      : v)

// 1. A cache file entirely in Baileys 7's form: export must reproduce it byte for byte. Inserted
//    out of order: JSON.stringify writes array-index keys ("1001") first, in ascending order.
const baileys7 = { 'acme-eu': record('acme', NOW - HOUR), 1002: record('1002', NOW - 2 * HOUR),
  1001: record('1001', NOW - 3 * HOUR) }
writeFileSync('cache-baileys7.json', JSON.stringify(baileys7, replacers.base64))

// 2. A seed-style cache file: one company per Buffer form (same content: they must import to
//    equal values), one expired, several malformed. Assembled from per-company JSON texts.
const same = record('seed', NOW - HOUR)
const parts = [
  ['2001', JSON.stringify(same, replacers.base64)],
  ['2002', JSON.stringify(same)],
  ['2003', JSON.stringify(asUint8(same))],
  ['2004', JSON.stringify(same, replacers.legacy)],
  ['2005', JSON.stringify(record('expired', NOW - 3 * 24 * HOUR), replacers.base64)],
  ['2006', JSON.stringify({ ...record('t', 0), timestamp: String(NOW) }, replacers.base64)],
  ['2007', JSON.stringify({ creds: creds('nokeys'), timestamp: NOW }, replacers.base64)],
  ['2008', JSON.stringify(record('future', NOW + 2 * 24 * HOUR), replacers.base64)],
  ['2009', JSON.stringify({ ...record('badbuf', NOW), creds: { noiseKey: { type: 'Buffer', data: '!!' + CANARY } } })],
  ['2010', 'null'],
  ['2011', JSON.stringify(record('float', NOW + 0.5), replacers.base64)],
  ['2012', JSON.stringify({ ...record('list', NOW), creds: [CANARY] }, replacers.base64)],
]
writeFileSync('cache-seed.json', '{' + parts.map(([id, text]) => `${JSON.stringify(id)}:${text}`).join(',') + '}')

// 3. A multi-file auth folder as useMultiFileAuthState writes it: file `${type}-${id}.json` with
//    '/' -> '__' and ':' -> '-' (src/Utils/use-multi-file-auth-state.ts, fixFileName).
const folder = 'auth'
rmSync(folder, { recursive: true, force: true })
mkdirSync(folder)
const fixFileName = (file) => file.replace(/\//g, '__').replace(/:/g, '-')
const write = (file, value) => writeFileSync(join(folder, fixFileName(file)), JSON.stringify(value, replacers.base64))
write('creds.json', creds('auth'))
write('pre-key-1.json', keyPair('auth pre-key 1'))
write('pre-key-2.json', keyPair('auth pre-key 2'))
write('session-4915100000001.0.json', bytes('auth session', 48))
write('session-123456789012345_1.0.json', bytes('auth lid session', 48))
write('sender-key-120363025246125888@g.us::4915100000001::0.json', bytes('auth sender key', 40))
write('sender-key-memory-120363025246125888@g.us.json', { '4915100000001:0@s.whatsapp.net': true })
write('app-state-sync-key-AAAAAKx/.json', appStateKey('auth'))
write('app-state-sync-version-regular_high.json', { version: 7, hash: bytes('auth lthash', 64),
  indexValueMap: { 'q83vEjRWeJA=': { valueMac: bytes('auth value mac') } } })
write('lid-mapping-4915100000001.json', '123456789012345')
write('lid-mapping-123456789012345_reverse.json', '4915100000001')
write('device-list-4915100000001.json', ['0', '7'])
write('tctoken-4915100000001@s.whatsapp.net.json', { token: bytes('auth tctoken', 24), timestamp: '1748700000' })
