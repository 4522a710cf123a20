/** The built console (index.html and its hashed assets), which the gatekeeper serves at /console/. */
export declare const consoleAssetsDir: string;
