export * from "./student";
