// esbuild bundles imported CSS into assets/main.css.
declare module "*.css";
