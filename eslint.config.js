// ESLint (flat config): typescript-eslint's recommended rules, the house style, and the layering of ARCHITECTURE.md
// as import rules, so a domain module that reaches for HTTP fails `npm test`.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

/** What the domain (auth/, team/, audit/, mail/, db/, oidc/, observability/) must never import: the web framework, the HTTP layer, views. */
const domainMayNotImport = [
  {
    group: ["fastify", "fastify/*", "@fastify/*", "fastify-*"],
    message: "Domain code has no HTTP in it: return a Result and let src/http map it.",
  },
  { group: ["**/http/*", "**/http/**"], message: "Dependencies point http → team, auth, audit → db, never back." },
  kyselyValuesFromOneModule(),
];

/** Kysely's values come from src/db/kysely.ts (its CommonJS build, loaded once: less memory, issue 10); its types from "kysely". */
function kyselyValuesFromOneModule() {
  return {
    group: ["kysely"],
    message: 'Import Kysely\'s values (sql, …) from src/db/kysely.ts; only `import type` from "kysely".',
    allowTypeImports: true,
  };
}

/** prom-client is known to src/observability/prometheus.ts alone: everything else reports through `ctx.metrics`. */
const onlyObservabilityImportsPromClient = {
  group: ["prom-client", "prom-client/*"],
  message: "Report through ctx.metrics (src/observability/metrics.ts); only src/observability/prometheus.ts knows prom-client.",
};

export default tseslint.config(
  { ignores: ["dist/", "data/", "node_modules/", "coverage/", "e2e/screenshots/", "test-results.json"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { ecmaVersion: 2023, sourceType: "module" },
    rules: {
      "@typescript-eslint/consistent-type-imports": ["error", { fixStyle: "inline-type-imports" }],
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrors: "none" }],
      eqeqeq: ["error", "always"],
      "no-console": "off",
    },
  },
  {
    files: ["src/**/*.ts"],
    rules: {
      "@typescript-eslint/explicit-module-boundary-types": "error",
      // Narrower rules below (domain, http, views) replace this one for their files and forbid the same.
      "no-restricted-imports": ["error", { patterns: [kyselyValuesFromOneModule()] }],
    },
  },
  {
    files: [
      "src/auth/**/*.ts",
      "src/team/**/*.ts",
      "src/audit/**/*.ts",
      "src/mail/**/*.ts",
      "src/db/**/*.ts",
      "src/oidc/**/*.ts",
      "src/observability/**/*.ts",
    ],
    ignores: ["src/observability/prometheus.ts"],
    rules: { "no-restricted-imports": ["error", { patterns: [...domainMayNotImport, onlyObservabilityImportsPromClient] }] },
  },
  {
    files: ["src/observability/prometheus.ts"],
    rules: { "no-restricted-imports": ["error", { patterns: domainMayNotImport }] },
  },
  {
    // Mail goes through the queue (`queueMail`, in the transaction of the change that causes it): only the sender hands
    // a message to the transport, so no request waits for a mail server and no message is lost when it fails.
    files: ["src/**/*.ts"],
    ignores: ["src/mail/sender.ts"],
    rules: {
      "no-restricted-syntax": [
        "error",
        ...["name", "property.name"].map((which) => ({
          selector: `CallExpression[callee.property.name='send'][callee.object.${which}=/^(mailer|transport)$/i]`,
          message: "Queue mail with queueMail(ctx, message, { key }) (src/mail/queue.ts); only src/mail/sender.ts calls Mailer.send.",
        })),
      ],
    },
  },
  {
    // Views draw what they are given: they never query the database or decide policy.
    files: ["src/http/views/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            {
              group: ["**/db/*", "**/db/**", "**/team/*", "**/auth/*", "**/audit/*", "kysely", "fastify"],
              message: "Views render what routes hand them; they do not query or decide (types are fine).",
              allowTypeImports: true,
            },
          ],
        },
      ],
    },
  },
  {
    // Routes parse, call one domain function and map the result: no SQL in http/.
    files: ["src/http/**/*.ts"],
    ignores: ["src/http/views/**"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            { group: ["kysely", "**/db/connect*"], message: "Routes call domain functions; they do not query the database." },
            onlyObservabilityImportsPromClient,
          ],
        },
      ],
    },
  },
  {
    files: ["test/**/*.ts", "e2e/**/*.ts", "bench/**/*.ts"],
    rules: { "@typescript-eslint/no-non-null-assertion": "off", "@typescript-eslint/no-explicit-any": "off" },
  },
);
