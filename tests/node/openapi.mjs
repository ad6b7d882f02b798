// Checks real responses against the OpenAPI document the server serves: each response must be
// documented for its route and status, and its body must validate against that schema.
import assert from 'node:assert/strict';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

const DOC_ID = 'urn:syncscript:openapi';

/** OpenAPI 3.1 schemas are JSON Schema 2020-12 plus a few annotation keywords. */
function schemaValidator(doc) {
  const ajv = new Ajv2020({ strict: true, allowUnionTypes: true, allErrors: true });
  addFormats(ajv);
  ajv.addVocabulary(['example', 'discriminator', 'xml', 'externalDocs']);
  ajv.addFormat('int32', { type: 'number', validate: (n) => Number.isInteger(n) && Math.abs(n) < 2 ** 31 });
  ajv.addFormat('int64', { type: 'number', validate: Number.isSafeInteger });
  // The components, under one id, so that the document's `#/components/schemas/…` refs resolve.
  const local = (value) => JSON.parse(
    JSON.stringify(value).replaceAll('"#/components/schemas/', `"${DOC_ID}#/$defs/`),
  );
  ajv.addSchema({ $id: DOC_ID, $defs: local(doc.components.schemas) });
  return { ajv, local };
}

/**
 * `check(method, template, response)` validates one real response; `uncovered()` lists the
 * operations not yet seen answering both a success and an error.
 */
export function responseChecker(doc) {
  const { ajv, local } = schemaValidator(doc);
  const compiled = new Map();
  const seen = new Map();
  const resolve = (obj) => {
    if (!obj?.$ref) return obj;
    const [, kind, name] = obj.$ref.match(/^#\/components\/(\w+)\/(.+)$/);
    return doc.components[kind][name];
  };

  function check(method, template, { status, body, contentType }) {
    const op = doc.paths[template]?.[method.toLowerCase()];
    assert.ok(op, `${method} ${template} is not documented`);
    const where = `${method} ${template} → ${status}`;
    const documented = resolve(op.responses[String(status)]);
    assert.ok(documented, `${where} is not among the documented statuses ${Object.keys(op.responses)}`);
    const schema = documented.content?.['application/json']?.schema;
    if (schema) {
      assert.match(contentType ?? '', /^application\/json/, `${where}: content-type`);
      const key = `${method} ${template} ${status}`;
      if (!compiled.has(key)) compiled.set(key, ajv.compile(local(schema)));
      const validate = compiled.get(key);
      assert.ok(validate(body), `${where}: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(body)}`);
    } else {
      assert.equal(body, null, `${where} has no documented body`);
    }
    const kinds = seen.get(`${method.toLowerCase()} ${template}`) ?? new Set();
    kinds.add(status < 400 ? 'success' : 'error');
    seen.set(`${method.toLowerCase()} ${template}`, kinds);
  }

  function uncovered() {
    const missing = [];
    for (const [template, item] of Object.entries(doc.paths)) {
      for (const method of Object.keys(item)) {
        const kinds = seen.get(`${method} ${template}`) ?? new Set();
        for (const kind of ['success', 'error']) {
          if (!kinds.has(kind)) missing.push(`${method} ${template} (${kind})`);
        }
      }
    }
    return missing;
  }

  return { check, uncovered };
}

/** Fills a path template: `fill('/api/vaults/{id}', { id })`. */
export function fill(template, params = {}) {
  return template.replace(/\{(\w+)\}/g, (_, name) => {
    assert.ok(params[name], `no value for {${name}} in ${template}`);
    return encodeURIComponent(params[name]);
  });
}
