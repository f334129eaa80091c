// Compile-time constants that sdk/build.mjs defines for esbuild.

/** The product's version, from src/tandem/__init__.py. */
declare const __TANDEM_VERSION__: string;
